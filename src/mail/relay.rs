//! The SMTP relay the platform configures (`roster run --smtp-*`, chart values `email.*`): where it
//! is, how to reach it safely, who roster sends as, and the portal link, if any.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, TlsParameters};

/// How the connection to the relay is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// `smtps://`: TLS from the first byte (port 465).
    Tls,
    /// `smtp://`: STARTTLS, required (port 587). A relay that does not offer it is refused.
    StartTls,
    /// `smtp://...?tls=none`: no encryption, for a relay on the same node or in the same pod.
    None,
}

/// A configured relay.
#[derive(Clone)]
pub struct Relay {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub credentials: Option<Credentials>,
    /// PEM certificates trusted besides the system's (a private relay's CA).
    pub extra_roots: Vec<Certificate>,
    pub from: Mailbox,
    /// A portal link such as `https://portal.example/join?org={namespace}&invite={invite}`; the
    /// e-mail then shows it instead of the kubectl command.
    pub join_url: Option<String>,
    /// The longest one attempt may take, connection to the relay's last answer.
    pub timeout: Duration,
    /// The wait before the first retry of a failed message (doubled for each further one).
    pub first_retry: Duration,
}

impl std::fmt::Debug for Relay {
    // Never prints the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("credentials", &self.credentials.as_ref().map(|_| "<set>"))
            .field("from", &self.from.to_string())
            .finish()
    }
}

/// What `roster run` was given about the relay.
pub struct Settings<'a> {
    pub url: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<String>,
    pub ca_file: Option<&'a Path>,
    pub from: Option<&'a str>,
    pub join_url: Option<&'a str>,
    pub timeout: Duration,
    pub first_retry: Duration,
}

/// Why the relay settings cannot work, naming the flag.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("--smtp-url {0:?}: {1}")]
    Url(String, String),
    #[error("--mail-from is required with --smtp-url: the address roster sends invitations from")]
    NoFrom,
    #[error("--mail-from {0:?} is not an address such as 'roster <no-reply@platform.example>'")]
    From(String),
    #[error("--smtp-username needs a password: set ROSTER_SMTP_PASSWORD or --smtp-password-file")]
    NoPassword,
    #[error("--smtp-ca-file {0}: {1}")]
    Ca(PathBuf, String),
    #[error("--join-url-template {0:?} must be an https:// (or http://) URL")]
    JoinUrl(String),
}

impl Relay {
    /// Checks and assembles the settings; every mistake names its flag.
    pub fn new(s: Settings<'_>) -> Result<Relay, SettingsError> {
        let (host, port, security) = parse_url(s.url)?;
        let from_text = s.from.ok_or(SettingsError::NoFrom)?;
        let from = from_text
            .parse::<Mailbox>()
            .map_err(|_| SettingsError::From(from_text.into()))?;
        let credentials = match (s.username, s.password) {
            (Some(user), Some(password)) => Some(Credentials::new(user.into(), password)),
            (Some(_), None) => return Err(SettingsError::NoPassword),
            (None, _) => None,
        };
        let extra_roots = match s.ca_file {
            Some(path) => read_roots(path)?,
            None => Vec::new(),
        };
        if let Some(url) = s.join_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(SettingsError::JoinUrl(url.into()));
        }
        Ok(Relay {
            host,
            port,
            security,
            credentials,
            extra_roots,
            from,
            join_url: s.join_url.map(Into::into),
            timeout: s.timeout,
            first_retry: s.first_retry,
        })
    }

    /// TLS parameters for this relay's host, trusting the system's CAs and the extra ones.
    pub fn tls(&self) -> Result<TlsParameters, lettre::transport::smtp::Error> {
        self.extra_roots
            .iter()
            .cloned()
            .fold(TlsParameters::builder(self.host.clone()), |b, c| {
                b.add_root_certificate(c)
            })
            .build_rustls()
    }
}

fn parse_url(text: &str) -> Result<(String, u16, Security), SettingsError> {
    let bad = |why: &str| SettingsError::Url(text.into(), why.into());
    let url = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    let plaintext = url.query_pairs().any(|(k, v)| k == "tls" && v == "none");
    let (security, default_port) = match (url.scheme(), plaintext) {
        ("smtps", false) => (Security::Tls, 465),
        ("smtp", false) => (Security::StartTls, 587),
        ("smtp", true) => (Security::None, 25),
        ("smtps", true) => return Err(bad("smtps:// always uses TLS; drop ?tls=none")),
        _ => {
            return Err(bad(
                "use smtps://HOST[:465] (TLS), smtp://HOST[:587] (STARTTLS, required) or smtp://HOST:PORT?tls=none",
            ));
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "put no credentials in the URL (it is logged and shown in the Deployment); use --smtp-username and ROSTER_SMTP_PASSWORD or --smtp-password-file",
        ));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("no host"))?;
    Ok((
        host.trim_matches(['[', ']']).to_string(),
        url.port().unwrap_or(default_port),
        security,
    ))
}

fn read_roots(path: &Path) -> Result<Vec<Certificate>, SettingsError> {
    let bad = |why: String| SettingsError::Ca(path.to_path_buf(), why);
    let pem = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let blocks: Vec<&str> = pem
        .split_inclusive("-----END CERTIFICATE-----")
        .filter(|b| b.contains("-----BEGIN CERTIFICATE-----"))
        .collect();
    if blocks.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    blocks
        .into_iter()
        .map(|b| Certificate::from_pem(b.trim().as_bytes()).map_err(|e| bad(e.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> Settings<'_> {
        Settings {
            url,
            username: None,
            password: None,
            ca_file: None,
            from: Some("roster <no-reply@platform.example>"),
            join_url: None,
            timeout: Duration::from_secs(30),
            first_retry: Duration::from_secs(30),
        }
    }

    #[test]
    fn urls_say_how_the_relay_is_secured_and_default_to_encryption() {
        let r = |u| Relay::new(settings(u)).map(|r| (r.host, r.port, r.security));
        assert_eq!(
            r("smtps://relay.example"),
            Ok(("relay.example".into(), 465, Security::Tls))
        );
        assert_eq!(
            r("smtp://relay.example"),
            Ok(("relay.example".into(), 587, Security::StartTls))
        );
        assert_eq!(
            r("smtp://127.0.0.1:2525?tls=none"),
            Ok(("127.0.0.1".into(), 2525, Security::None))
        );
        for bad in [
            "http://relay.example",
            "smtps://relay?tls=none",
            "smtp://u:p@relay",
            "relay:25",
        ] {
            let e = Relay::new(settings(bad)).unwrap_err().to_string();
            assert!(e.starts_with("--smtp-url"), "{bad}: {e}");
        }
    }

    #[test]
    fn every_missing_or_wrong_setting_names_its_flag() {
        let no_from = Settings {
            from: None,
            ..settings("smtp://relay")
        };
        assert_eq!(Relay::new(no_from).unwrap_err(), SettingsError::NoFrom);
        let bad_from = Settings {
            from: Some("not an address"),
            ..settings("smtp://relay")
        };
        assert!(
            Relay::new(bad_from)
                .unwrap_err()
                .to_string()
                .contains("--mail-from")
        );
        let no_password = Settings {
            username: Some("roster"),
            ..settings("smtp://relay")
        };
        assert_eq!(
            Relay::new(no_password).unwrap_err(),
            SettingsError::NoPassword
        );
        let bad_portal = Settings {
            join_url: Some("portal/join"),
            ..settings("smtp://relay")
        };
        assert!(
            Relay::new(bad_portal)
                .unwrap_err()
                .to_string()
                .contains("--join-url-template")
        );
        let no_ca = Settings {
            ca_file: Some(Path::new("/nonexistent/ca.pem")),
            ..settings("smtp://relay")
        };
        assert!(
            Relay::new(no_ca)
                .unwrap_err()
                .to_string()
                .contains("--smtp-ca-file")
        );
    }

    #[test]
    fn credentials_never_show_in_debug_output() {
        let s = Settings {
            username: Some("roster"),
            password: Some("hunter2".into()),
            ..settings("smtp://relay")
        };
        let shown = format!("{:?}", Relay::new(s).unwrap());
        assert!(
            !shown.contains("hunter2") && shown.contains("<set>"),
            "{shown}"
        );
    }
}
