//! `kubectl-roster`: the kubectl plugin (`kubectl roster ...` once it is on the PATH). A binary of its
//! own rather than a dispatch on argv[0], so that installing it is copying one file; everything it
//! does is in [`roster::plugin`].

#[tokio::main]
async fn main() {
    roster::plugin::main().await
}
