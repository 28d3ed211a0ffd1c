//! Who a name is: Kubernetes' own `system:` identities, and e-mail addresses whose domain a
//! `selfJoin` policy may match. Usernames are compared exactly everywhere else: Kubernetes
//! usernames are case-sensitive, so `BOB@A.EXAMPLE` is not `bob@a.example`.

/// Users and groups Kubernetes reserves for itself (`system:anonymous`, service accounts, nodes,
/// `system:masters`, ...). Only platform principals may name them in a Membership or a Team.
pub fn is_system(name: &str) -> bool {
    name.starts_with("system:")
}

/// The domain of a well-formed e-mail address: one `@`, a non-empty local part without spaces or
/// control characters, and a DNS domain (letters, digits, `-`, dots between labels). Anything
/// else has no domain, so `x@evil.example@a.example` and `@a.example` never match a policy.
pub fn email_domain(username: &str) -> Option<&str> {
    let (local, domain) = username.split_once('@')?;
    let local_ok = !local.is_empty()
        && local
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '@');
    let domain_ok = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    (local_ok && domain_ok).then_some(domain)
}

/// Whether `username` is an address in one of `domains` (domains compare case-insensitively, as DNS
/// does).
pub fn in_domains(username: &str, domains: &[String]) -> bool {
    email_domain(username).is_some_and(|d| {
        domains
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_addresses_have_a_domain() {
        assert_eq!(email_domain("ada@a.example"), Some("a.example"));
        assert_eq!(email_domain("ada.l+x@A.Example"), Some("A.Example"));
        for bad in [
            "x@evil.example@a.example",
            "@a.example",
            "ada@",
            "ada",
            "ada @a.example",
            "ada@a..example",
            "ada@.a.example",
            "ada@a.example.",
            "ada@-a.example",
            "ada@a_b.example",
            "ada@a.example\n",
            "system:serviceaccount:ns:sa",
        ] {
            assert_eq!(email_domain(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn domains_match_case_insensitively_and_whole() {
        let domains = ["a.example".to_string()];
        assert!(in_domains("ada@A.EXAMPLE", &domains));
        assert!(!in_domains("ada@evil-a.example", &domains));
        assert!(!in_domains("ada@a.example.evil", &domains));
        assert!(!in_domains("x@evil.example@a.example", &domains));
    }

    #[test]
    fn system_names_are_recognised() {
        assert!(is_system("system:anonymous"));
        assert!(is_system("system:serviceaccount:kube-system:default"));
        assert!(!is_system("systemic@a.example"));
    }
}
