//! Multicast groups that carry MTK messages (docs/profile.md §2.3: UDP to port 2269 at the RTP
//! destination address of the session): `GROUP[:PORT][%IFACE]`, and the socket that joins one.
//! MSK pushes stay unicast on the listen socket.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// The interface a group is joined on.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinInterface {
    /// Let the system choose (IPv4 `INADDR_ANY`, IPv6 index 0).
    Default,
    /// IPv4: the address of the interface, e.g. `127.0.0.1` for `lo`.
    Addr(Ipv4Addr),
    /// IPv6: the interface index.
    Index(u32),
    /// IPv6: the interface name, resolved to its index when the group is joined.
    Name(String),
}

/// One multicast group to join: `GROUP[:PORT][%IFACE]`, e.g. `239.255.0.1:2269%127.0.0.1`,
/// `[ff15::1]:2269%eth0`, `ff15::1%3`. IPv6 with a port is written in brackets. For IPv4 the
/// interface is given by its address; for IPv6 by its name or index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    /// The group address (multicast).
    pub group: IpAddr,
    /// The UDP port; `None` = the port of the listen socket.
    pub port: Option<u16>,
    /// The interface.
    pub interface: JoinInterface,
}

/// A `--join` value that does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} (expected GROUP[:PORT][%IFACE], IPv6 with a port as [GROUP]:PORT)")]
pub struct JoinParseError(&'static str);

impl FromStr for Join {
    type Err = JoinParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = JoinParseError;
        let (addr, iface) = match s.rsplit_once('%') {
            Some((a, i)) => (a, Some(i)),
            None => (s, None),
        };
        let (group, port) = if let Some(rest) = addr.strip_prefix('[') {
            let (group, after) = rest.split_once(']').ok_or(err("unclosed '['"))?;
            let group: IpAddr = group
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| err("not an IPv6 address in brackets"))?
                .into();
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(err("expected :PORT after ']'"))?),
            };
            (group, port)
        } else if let Ok(group) = addr.parse::<IpAddr>() {
            (group, None)
        } else {
            let (group, port) = addr.rsplit_once(':').ok_or(err("not an IP address"))?;
            let group = group
                .parse::<Ipv4Addr>()
                .map_err(|_| err("not an IP address"))?;
            (IpAddr::V4(group), Some(port))
        };
        if !group.is_multicast() {
            return Err(err("not a multicast group address"));
        }
        let port = match port {
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or(err("bad port"))?,
            ),
            None => None,
        };
        let interface = match (group, iface) {
            (_, None) => JoinInterface::Default,
            (_, Some("")) => return Err(err("empty interface after '%'")),
            (IpAddr::V4(_), Some(i)) => JoinInterface::Addr(
                i.parse()
                    .map_err(|_| err("IPv4: give the interface by its address, e.g. %127.0.0.1"))?,
            ),
            (IpAddr::V6(_), Some(i)) => match i.parse::<u32>() {
                Ok(index) => JoinInterface::Index(index),
                Err(_) if i.contains(['/', '.']) || i.len() > 15 => {
                    return Err(err("IPv6: give the interface by its name or index"));
                }
                Err(_) => JoinInterface::Name(i.to_owned()),
            },
        };
        Ok(Self {
            group,
            port,
            interface,
        })
    }
}

impl fmt::Display for Join {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.group, self.port) {
            (IpAddr::V6(g), Some(p)) => write!(f, "[{g}]:{p}")?,
            (g, Some(p)) => write!(f, "{g}:{p}")?,
            (g, None) => write!(f, "{g}")?,
        }
        match &self.interface {
            JoinInterface::Default => Ok(()),
            JoinInterface::Addr(a) => write!(f, "%{a}"),
            JoinInterface::Index(i) => write!(f, "%{i}"),
            JoinInterface::Name(n) => write!(f, "%{n}"),
        }
    }
}

/// The index of an interface by name (Linux: `/sys/class/net/NAME/ifindex`).
fn interface_index(name: &str) -> std::io::Result<u32> {
    let path = std::path::Path::new("/sys/class/net")
        .join(name)
        .join("ifindex");
    std::fs::read_to_string(path)?
        .trim()
        .parse()
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad ifindex"))
}

/// A socket bound to the group address and port (`SO_REUSEADDR`, so other receivers of the group
/// on this host may bind it too) and joined to the group on the interface.
pub(crate) fn group_socket(join: &Join, default_port: u16) -> std::io::Result<UdpSocket> {
    let port = join.port.unwrap_or(default_port);
    let domain = match join.group {
        IpAddr::V4(_) => Domain::IPV4,
        IpAddr::V6(_) => Domain::IPV6,
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    match join.group {
        IpAddr::V4(group) => {
            let iface = match &join.interface {
                JoinInterface::Addr(a) => *a,
                _ => Ipv4Addr::UNSPECIFIED,
            };
            socket.bind(&SocketAddr::new(join.group, port).into())?;
            socket.join_multicast_v4(&group, &iface)?;
        }
        IpAddr::V6(group) => {
            let index = match &join.interface {
                JoinInterface::Index(i) => *i,
                JoinInterface::Name(n) => interface_index(n)?,
                _ => 0,
            };
            socket.set_only_v6(true)?;
            socket.bind(&SocketAddr::new(join.group, port).into())?;
            socket.join_multicast_v6(&group, index)?;
        }
    }
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(s: &str) -> Join {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn ipv4_groups_with_port_and_interface_address() {
        let j = join("239.255.1.2:5000%127.0.0.1");
        assert_eq!(j.group, IpAddr::from([239, 255, 1, 2]));
        assert_eq!(j.port, Some(5000));
        assert_eq!(j.interface, JoinInterface::Addr(Ipv4Addr::LOCALHOST));
        assert_eq!(j.to_string(), "239.255.1.2:5000%127.0.0.1");
        let j = join("239.255.1.2");
        assert_eq!((j.port, j.interface), (None, JoinInterface::Default));
        assert_eq!(join("224.0.0.251%10.0.0.1").port, None);
    }

    #[test]
    fn ipv6_groups_with_brackets_for_a_port_and_an_interface_name_or_index() {
        let j = join("[ff15::1]:2269%eth0");
        assert_eq!(j.group, "ff15::1".parse::<IpAddr>().unwrap());
        assert_eq!(j.port, Some(2269));
        assert_eq!(j.interface, JoinInterface::Name("eth0".into()));
        assert_eq!(j.to_string(), "[ff15::1]:2269%eth0");
        let j = join("ff15::1%3");
        assert_eq!((j.port, j.interface), (None, JoinInterface::Index(3)));
        let j = join("[ff02::1]");
        assert_eq!((j.port, j.interface), (None, JoinInterface::Default));
    }

    #[test]
    fn bad_joins_are_refused_with_a_reason() {
        for bad in [
            "",
            "10.0.0.1:2269",
            "239.255.1.2:0",
            "239.255.1.2:70000",
            "239.255.1.2:x",
            "239.255.1.2%lo",
            "239.255.1.2%",
            "[ff15::1",
            "[ff15::1]2269",
            "[239.1.1.1]:5",
            "ff15::1%a/b",
            "fe80::1%eth0",
            "host.example:2269",
        ] {
            assert!(bad.parse::<Join>().is_err(), "{bad}");
        }
        let e = "239.255.1.2%lo".parse::<Join>().unwrap_err();
        assert!(
            e.to_string()
                .contains("IPv4: give the interface by its address")
        );
    }

    #[test]
    fn an_interface_name_resolves_to_its_index() {
        // The loopback interface exists on Linux; elsewhere the lookup fails cleanly.
        if std::path::Path::new("/sys/class/net/lo").exists() {
            assert!(interface_index("lo").unwrap() > 0);
        }
        assert!(interface_index("no-such-interface0").is_err());
    }
}
