//! The SSRF guard for channel base URLs. Callers never supply upstream URLs; operators do, and
//! a base URL that reaches loopback, private, link-local, unique-local, CGNAT, unspecified,
//! multicast or cloud-metadata addresses is refused unless the channel is marked local
//! (Ollama, vLLM, LM Studio, the demo's mock). The literal host is checked first, then every
//! address the name resolves to ([`check`]).
//!
//! Where it runs: when a channel is saved (console and CLI, `catalog::channels`), before every
//! "Test" request (`weir-server`'s channel probe), and at connect time for every upstream
//! request: the gateway's HTTP client resolves names through `GuardedResolver`
//! (`server/src/upstream.rs`), which drops forbidden addresses unless the host belongs to a
//! local (or deployer-configured) channel, and follows no redirects.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("not a valid URL")]
    Malformed,
    #[error("the URL must start with http:// or https://")]
    Scheme,
    #[error("the URL must not carry a user name or password; put the key in the key field")]
    Credentials,
    #[error("{0} is a private, loopback or metadata address; mark the channel local to allow it")]
    Private(String),
    #[error("{0} does not resolve")]
    Unresolvable(String),
}

/// True for addresses a non-local channel may not reach.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, metadata 169.254.169.254 included
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10 (Alibaba metadata 100.100.100.200)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let seg = ip.segments();
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address that must pass too.
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        let o = ip.octets();
        return forbidden_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if seg[0] == 0x2002 {
        let o = ip.octets();
        return forbidden_v4(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7 (AWS metadata fd00:ec2::254)
        || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || seg[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated), ::/96
}

/// Parses a base URL and checks its literal host: scheme http(s), no credentials, and (unless
/// `local`) no forbidden IP literal. Returns the host and port to resolve.
pub fn check_literal(base_url: &str, local: bool) -> Result<(String, u16), UrlError> {
    let url = url::Url::parse(base_url.trim()).map_err(|_| UrlError::Malformed)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let host = match url.host() {
        None => return Err(UrlError::Malformed),
        Some(url::Host::Ipv4(ip)) => {
            if !local && forbidden_v4(ip) {
                return Err(UrlError::Private(ip.to_string()));
            }
            ip.to_string()
        }
        Some(url::Host::Ipv6(ip)) => {
            if !local && forbidden_v6(ip) {
                return Err(UrlError::Private(format!("[{ip}]")));
            }
            ip.to_string()
        }
        // Names (`localhost` included) are checked on what they resolve to, in `check`.
        Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
    };
    Ok((host, port))
}

/// [`check_literal`], then (unless `local`) resolves the host and refuses the URL when any
/// address it resolves to is forbidden (a name pointing at 127.0.0.1 or the metadata
/// service). A name that does not resolve is refused too: it cannot be checked.
pub async fn check(base_url: &str, local: bool) -> Result<(), UrlError> {
    check_with(base_url, local, |host, port| async move {
        let addrs = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        .ok()?
        .ok()?;
        Some(addrs.map(|a| a.ip()).collect())
    })
    .await
}

/// [`check`] with the name resolution supplied (tests resolve names to chosen addresses).
pub async fn check_with<F, Fut>(base_url: &str, local: bool, resolve: F) -> Result<(), UrlError>
where
    F: FnOnce(String, u16) -> Fut,
    Fut: std::future::Future<Output = Option<Vec<IpAddr>>>,
{
    let (host, port) = check_literal(base_url, local)?;
    if local || host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let addrs = resolve(host.clone(), port)
        .await
        .ok_or_else(|| UrlError::Unresolvable(host.clone()))?;
    let mut any = false;
    for ip in addrs {
        any = true;
        if is_forbidden(ip) {
            return Err(UrlError::Private(format!("{host} ({ip})")));
        }
    }
    if any {
        Ok(())
    } else {
        Err(UrlError::Unresolvable(host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_private_targets_unless_local() {
        for url in [
            "http://127.0.0.1",
            "http://127.0.0.1:5432/v1",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]",
            "http://[::ffff:127.0.0.1]",
            "http://[fd00:ec2::254]",
            "http://10.1.2.3",
            "http://192.168.0.10",
            "http://172.16.5.5",
            "http://100.100.100.200",
            "http://0.0.0.0",
            "http://[::]",
            "http://[fe80::1]",
            "http://localhost:11434",
            "http://2130706433", // 127.0.0.1 as one decimal number
        ] {
            assert!(
                matches!(check(url, false).await, Err(UrlError::Private(_))),
                "{url} must be refused"
            );
            assert_eq!(check(url, true).await, Ok(()), "{url} allowed when local");
        }
        // A name that resolves to a forbidden address is refused after resolution.
        for ip in ["127.0.0.1", "169.254.169.254", "::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            let got = check_with("https://api.example.test/v1", false, |h, _| async move {
                assert_eq!(h, "api.example.test");
                Some(vec!["93.184.215.14".parse().unwrap(), ip])
            })
            .await;
            assert!(matches!(got, Err(UrlError::Private(_))), "{ip}: {got:?}");
            let ok = check_with("https://api.example.test/v1", true, |_, _| async { None }).await;
            assert_eq!(ok, Ok(()), "local channels skip the check");
        }
        let public = check_with("https://api.example.test", false, |_, _| async {
            Some(vec!["93.184.215.14".parse().unwrap()])
        })
        .await;
        assert_eq!(public, Ok(()));
        let none = check_with("https://nx.example.test", false, |_, _| async { None }).await;
        assert!(matches!(none, Err(UrlError::Unresolvable(_))));
        assert_eq!(
            check("file:///etc/passwd", true).await,
            Err(UrlError::Scheme)
        );
        assert_eq!(check("not a url", false).await, Err(UrlError::Malformed));
        assert_eq!(
            check("https://user:pw@api.example.com", false).await,
            Err(UrlError::Credentials)
        );
        // Public literals pass without DNS.
        assert_eq!(check("https://1.1.1.1/v1", false).await, Ok(()));
        assert_eq!(check("https://[2606:4700::1111]/v1", false).await, Ok(()));
        assert!(!is_forbidden("8.8.8.8".parse().unwrap()));
    }
}
