#!/usr/bin/env python3
"""Packs a root filesystem into an OCI image archive (an OCI image layout in a tar), with no container
engine: one gzipped layer, a config and a manifest, named so that `ctr images import` tags it.

    hack/oci-image.py --rootfs DIR --dockerfile Dockerfile --name NAME:TAG --out FILE

The image's runtime settings (user, entrypoint, command, exposed ports, labels) are read from the
Dockerfile's last stage, so that this image and the one `docker build` makes from the Dockerfile are
run the same way by the chart. Output is reproducible: sorted entries, fixed times and owners.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import shlex
import stat
import tarfile

EPOCH = 0  # every file time, so that the same inputs give the same digests


def runtime_settings(dockerfile):
    """USER, ENTRYPOINT, CMD, EXPOSE and LABEL of the Dockerfile's last stage (the runtime)."""
    text = open(dockerfile, encoding="utf-8").read().replace("\\\n", " ")
    stage = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("FROM "):
            stage = []
        elif line and not line.startswith("#"):
            stage.append(line)
    settings = {"Labels": {}, "ExposedPorts": {}}
    for line in stage:
        word, _, rest = line.partition(" ")
        if word == "USER":
            settings["User"] = rest.strip()
        elif word in ("ENTRYPOINT", "CMD"):
            settings["Entrypoint" if word == "ENTRYPOINT" else "Cmd"] = json.loads(rest)
        elif word == "EXPOSE":
            for port in rest.split():
                settings["ExposedPorts"][port if "/" in port else port + "/tcp"] = {}
        elif word == "LABEL":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                settings["Labels"][key] = value
    for key in ("User", "Entrypoint"):
        if key not in settings:
            raise SystemExit(f"oci-image: {dockerfile}: its last stage has no {key.upper()}")
    return settings


def layer(rootfs):
    """The rootfs as an uncompressed tar, entries sorted, owned by root, at time EPOCH."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for top, dirs, files in os.walk(rootfs):
            dirs.sort()
            for name in sorted(dirs + files):
                path = os.path.join(top, name)
                info = tar.gettarinfo(path, arcname=os.path.relpath(path, rootfs))
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = EPOCH
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return buf.getvalue()


def blob(tar, data, media_type):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    add(tar, "blobs/sha256/" + digest.split(":")[1], data)
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = EPOCH
    info.mode = stat.S_IMODE(0o644)
    tar.addfile(info, io.BytesIO(data))


def as_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rootfs", required=True)
    p.add_argument("--dockerfile", required=True)
    p.add_argument("--name", required=True, help="the image reference, e.g. docker.io/library/roster:0.1.0")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    diff = layer(args.rootfs)
    compressed = gzip.compress(diff, mtime=EPOCH)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": runtime_settings(args.dockerfile),
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(diff).hexdigest()]},
    }
    tmp = args.out + ".tmp"
    with tarfile.open(tmp, mode="w") as tar:
        add(tar, "oci-layout", as_json({"imageLayoutVersion": "1.0.0"}))
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": blob(tar, as_json(config), "application/vnd.oci.image.config.v1+json"),
            "layers": [blob(tar, compressed, "application/vnd.oci.image.layer.v1.tar+gzip")],
        }
        descriptor = blob(tar, as_json(manifest), manifest["mediaType"])
        # containerd names the imported image from this annotation.
        descriptor["annotations"] = {
            "io.containerd.image.name": args.name,
            "org.opencontainers.image.ref.name": args.name.rpartition(":")[2],
        }
        add(tar, "index.json", as_json({"schemaVersion": 2, "manifests": [descriptor]}))
    os.replace(tmp, args.out)
    print(manifest["config"]["digest"])


if __name__ == "__main__":
    main()
