//! `amqp://user:password@host:port/vhost` URIs, as every AMQP client takes them (RabbitMQ's URI
//! spec): user, password and vhost are percent-decoded, the port defaults to 5672 and a missing
//! vhost is `/`.

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: String,
    pub user: String,
    pub password: String,
    pub vhost: String,
}

fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or_else(|| format!("bad escape in '{text}'"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad escape in '{text}'"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("'{text}' is not UTF-8 once decoded"))
}

pub fn parse(uri: &str) -> Result<Target, String> {
    let rest = uri.strip_prefix("amqp://").ok_or("only amqp:// URIs are supported")?;
    let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
    let (userinfo, hostport) = authority.rsplit_once('@').map_or((None, authority), |(u, h)| (Some(u), h));
    let (user, password) = match userinfo {
        Some(info) => {
            let (u, p) = info.split_once(':').unwrap_or((info, ""));
            (decode(u)?, decode(p)?)
        }
        None => ("guest".to_owned(), "guest".to_owned()),
    };
    if hostport.is_empty() {
        return Err("the URI names no host".into());
    }
    let addr = if hostport.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) {
        hostport.to_owned()
    } else {
        format!("{hostport}:5672")
    };
    let vhost = match path {
        None | Some("") => "/".to_owned(),
        Some(p) => decode(p)?,
    };
    Ok(Target { addr, user, password, vhost })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_as_clients_read_them() {
        let t = parse("amqp://bob:p%40ss@broker.local:5673/%2F").unwrap();
        assert_eq!(
            t,
            Target { addr: "broker.local:5673".into(), user: "bob".into(), password: "p@ss".into(), vhost: "/".into() }
        );
        let t = parse("amqp://localhost").unwrap();
        assert_eq!((t.addr.as_str(), t.user.as_str(), t.vhost.as_str()), ("localhost:5672", "guest", "/"));
        assert_eq!(parse("amqp://u:p@h/orders").unwrap().vhost, "orders");
        assert!(parse("http://h").is_err());
        assert!(parse("amqp://u:p@/v").is_err());
        assert!(parse("amqp://h/%zz").is_err());
    }
}
