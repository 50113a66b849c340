//! Machines on a test's own networks, made of Linux network namespaces: one namespace per host,
//! and a "switch" namespace holding one bridge per network, each host joined to each of its
//! networks by a veth pair. The root namespace is left alone. Pulling a host's cable means
//! setting its veth's switch end down: as with a real cable, nobody gets an error at once, the
//! packets just stop. Needs root and `ip`; [`Net`] deletes everything it made when dropped.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The `ip` command of iproute2.
pub const IP: &str = "/usr/sbin/ip";

/// Every namespace made here is named `quern-PID-…`, PID the test process's, so parallel runs
/// never collide and leftovers of a killed run can be told apart and removed.
const PREFIX: &str = "quern-";

/// One test's networks and hosts.
pub struct Net {
    /// `quern-PID-N`: this net's namespaces are `quern-PID-N-switch` and `quern-PID-N-HOST`.
    name: String,
    switch: String,
    networks: Vec<String>,
    hosts: Vec<String>,
}

/// A host: a network namespace with an address on each network it joined.
#[derive(Debug, Clone)]
pub struct Host {
    pub namespace: String,
    /// The host's number on every network: its address there ends in it.
    number: usize,
    networks: Vec<String>,
}

impl Host {
    /// The host's address on `network`: `10.213.N.H`, N the network's number and H the host's.
    pub fn address(&self, net: &Net, network: &str) -> String {
        assert!(
            self.networks.iter().any(|n| n == network),
            "{} is not on network {network}",
            self.namespace
        );
        format!("10.213.{}.{}", net.network_number(network), self.number)
    }

    /// `program` to be run inside this host's namespace (`ip netns exec NAME program`, which
    /// execs it: the child is `program` itself, so killing the child kills the program).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(IP);
        command
            .args(["netns", "exec", &self.namespace])
            .arg(program);
        command
    }
}

impl Net {
    /// A switch with one bridge per name in `networks` (each a valid interface name: it names the
    /// host's veth on that network), or why this machine cannot have one: not root, or no
    /// working `ip netns`. Leftover namespaces of test processes that have exited go first.
    pub fn create(networks: &[&str]) -> Result<Net, String> {
        if !is_root() {
            return Err("network namespaces need root".to_string());
        }
        remove_leftovers();
        static NETS: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NETS.fetch_add(1, Ordering::Relaxed)
        );
        let switch = format!("{name}-switch");
        ip(&["netns", "add", &switch])?;
        let net = Net {
            name,
            switch,
            networks: networks.iter().map(|n| n.to_string()).collect(),
            hosts: Vec::new(),
        };
        for (i, network) in networks.iter().enumerate() {
            assert!(
                network.len() <= 15 && !network.is_empty(),
                "'{network}' cannot name an interface"
            );
            let bridge = format!("br{i}");
            net.in_switch(&["link", "add", &bridge, "type", "bridge"])?;
            net.in_switch(&["link", "set", &bridge, "up"])?;
        }
        Ok(net)
    }

    /// [`Net::create`], or None after saying why the test is skipped. With `QUERN_NETNS=require`
    /// in the environment (CI), not being able to is a failure instead.
    pub fn create_or_skip(networks: &[&str]) -> Option<Net> {
        match Net::create(networks) {
            Ok(net) => Some(net),
            Err(why) if std::env::var("QUERN_NETNS").as_deref() == Ok("require") => {
                panic!("QUERN_NETNS=require, but no network namespaces: {why}")
            }
            Err(why) => {
                eprintln!("SKIPPED: this test needs Linux network namespaces: {why}");
                None
            }
        }
    }

    /// A new host called `name` (for namespace names and messages), with `lo` up, joined to each
    /// of `networks`.
    pub fn add_host(&mut self, name: &str, networks: &[&str]) -> Host {
        let namespace = format!("{}-{name}", self.name);
        ip(&["netns", "add", &namespace]).unwrap_or_else(|e| panic!("{e}"));
        self.hosts.push(namespace.clone());
        let host = Host {
            namespace,
            number: self.hosts.len(),
            networks: networks.iter().map(|n| n.to_string()).collect(),
        };
        self.in_host(&host, &["link", "set", "lo", "up"]);
        for network in networks {
            self.plug(&host, network);
        }
        host
    }

    /// Joins `host` to `network`: a veth named after the network in the host, its other end (a
    /// port of the network's bridge) in the switch.
    fn plug(&self, host: &Host, network: &str) {
        let port = self.port(host, network);
        let address = format!("{}/24", host.address(self, network));
        let bridge = format!("br{}", self.network_number(network) - 1);
        let peer = ["peer", "name", &port, "netns", &self.switch];
        let mut add = vec!["link", "add", network, "type", "veth"];
        add.extend_from_slice(&peer);
        self.in_host(host, &add);
        self.in_host(host, &["addr", "add", &address, "dev", network]);
        self.in_host(host, &["link", "set", network, "up"]);
        self.in_switch(&["link", "set", &port, "master", &bridge, "up"])
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Plugs (`up`) or pulls (`!up`) `host`'s cable on `network`, at the switch.
    pub fn set_link(&self, host: &Host, network: &str, up: bool) {
        let port = self.port(host, network);
        let state = if up { "up" } else { "down" };
        self.in_switch(&["link", "set", &port, state])
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The switch end of `host`'s veth on `network`: `hH-N`.
    fn port(&self, host: &Host, network: &str) -> String {
        format!("h{}-{}", host.number, self.network_number(network))
    }

    /// Networks are numbered from 1, in the order given to [`Net::create`].
    fn network_number(&self, network: &str) -> usize {
        1 + self
            .networks
            .iter()
            .position(|n| n == network)
            .unwrap_or_else(|| panic!("no network called {network}"))
    }

    fn in_switch(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-n", &self.switch];
        all.extend_from_slice(args);
        ip(&all)
    }

    fn in_host(&self, host: &Host, args: &[&str]) {
        let mut all = vec!["-n", &host.namespace];
        all.extend_from_slice(args);
        ip(&all).unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for Net {
    /// Deleting a host's namespace deletes its veths, the switch's namespace its bridges. (A
    /// namespace only goes once no process is left in it: kill them first.)
    fn drop(&mut self) {
        for namespace in self.hosts.iter().chain(std::iter::once(&self.switch)) {
            if let Err(e) = ip(&["netns", "delete", namespace]) {
                eprintln!("cannot clean up: {e}");
            }
        }
    }
}

/// Runs `ip ARGS`; a failure says what was run and what `ip` said.
fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new(IP)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {IP}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "`ip {}` failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}

/// Whether this process's effective user is root, from the `Uid:` line of /proc/self/status
/// (real, effective, saved, filesystem).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// Deletes namespaces named by this module for a process that no longer runs (a test that was
/// SIGKILLed never dropped its [`Net`]).
fn remove_leftovers() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = ip(&["netns", "delete", &name]);
        }
    }
}
