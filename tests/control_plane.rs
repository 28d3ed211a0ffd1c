//! The foundation works: the local control plane serves roster's CRDs, validates against their
//! schemas, and garbage-collects (kube-controller-manager really runs).

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, PostParams};
use roster::api::Organization;

#[tokio::test]
async fn crds_become_established_and_objects_round_trip() {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "round-trip").await;
    let orgs: Api<Organization> = Api::namespaced(client.clone(), &ns);

    let org: Organization = serde_json::from_value(serde_json::json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Organization",
        "metadata": { "name": "acme" },
        "spec": { "displayName": "Acme", "policy": { "maxMembers": 10 } }
    }))
    .unwrap();
    orgs.create(&PostParams::default(), &org)
        .await
        .expect("create Organization");

    let read = orgs.get("acme").await.expect("read it back");
    assert_eq!(read.spec.display_name.as_deref(), Some("Acme"));
    assert_eq!(read.spec.policy.max_members, Some(10));
    // Defaults come from the CRD schema, applied by the API server.
    assert_eq!(read.spec.policy.min_owners, 1);
    assert_eq!(read.spec.policy.invites.default_ttl, "168h");
    assert_eq!(read.spec.access.cluster_roles.member, "edit");
}

#[tokio::test]
async fn schema_violations_are_rejected_by_the_api_server() {
    let client = support::admin_client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, "schema").await;
    let bad = serde_json::json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "Organization",
        "metadata": { "name": "bad" },
        "spec": { "dataRegion": "Mars", "policy": { "minOwners": 0 } }
    });
    let err = support::create_raw(&client, &ns, bad)
        .await
        .expect_err("an invalid Organization must be refused");
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err}")
    };
    let (code, message) = (status.code, status.message);
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("spec.dataRegion"), "{message}");
    assert!(message.contains("spec.policy.minOwners"), "{message}");
}

#[tokio::test]
async fn garbage_collector_deletes_dependents_of_a_deleted_owner() {
    let client = support::admin_client().await;
    let ns = support::namespace(&client, "gc").await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);

    let owner = maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": { "name": "owner" }
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let dependent: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "dependent", "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
            "uid": owner.metadata.uid.unwrap()
        }]}
    }))
    .unwrap();
    maps.create(&PostParams::default(), &dependent)
        .await
        .unwrap();

    maps.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    for _ in 0..300 {
        if maps.get_opt("dependent").await.unwrap().is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the garbage collector did not delete the dependent within 30s");
}
