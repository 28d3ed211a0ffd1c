//! `kubectl_complete-roster`: what kubectl (1.26 and later) runs to complete `kubectl roster ...`
//! (it looks for `kubectl_complete-<plugin>` on the PATH). It prints the candidates for the words
//! it is given, the one being completed last, in Cobra's format; see [`roster::plugin`].

fn main() {
    roster::plugin::complete_main()
}
