//! `cargo bench --bench pipeline`: wall time and peak RSS of `recreate`.
//!
//! Scenarios: the example cluster, and synthetic clusters of 100 and 1000
//! nodes (one control plane + etcd, the rest workers, fresh ed25519 host
//! keys): a first run (everything issued and sealed), a no-op re-run, and
//! adding one node. Each measured run happens in its own child process (this
//! binary re-executed), so the peak RSS printed is that run's alone. CPU time
//! (user + system) is printed beside wall time: on a shared machine it shows
//! the work done regardless of how much of the cores the run got.
//! Targets: example well under 100 ms; 1000 nodes first run < 2 s on 2 cores,
//! no-op <= 150 ms, add one node <= 250 ms. "Add one node" starts from the cluster
//! folder as a previous run left it (bundle and spare); "(fresh clone)" starts
//! without the spare, as a new `git clone` does, and links every kept file once.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use kubepki::bundle::{self, RecreateOptions};
use kubepki::inventory::Inventory;

const CHILD: &str = "KUBEPKI_BENCH_CHILD";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn options() -> RecreateOptions {
    RecreateOptions {
        identities: vec![repo().join("tests/keys/operator/id_ed25519")],
        ..RecreateOptions::default()
    }
}

/// Peak RSS (KiB) and CPU time (user + system, ms) of this process so far.
fn usage() -> (i64, f64) {
    // SAFETY: getrusage fills the zeroed struct we pass it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    (usage.ru_maxrss, ms(usage.ru_utime) + ms(usage.ru_stime))
}

/// The measured run, in the child: one `recreate` of the inventory at `path`.
fn child(path: &Path) {
    // Timed like the command: loading the inventory (and its host keys) included.
    let start = Instant::now();
    let inventory = Inventory::load(path).unwrap_or_else(|e| panic!("{e}"));
    let outcome = bundle::recreate(&inventory, &options()).unwrap_or_else(|e| panic!("{e}"));
    let elapsed = start.elapsed();
    let (rss, cpu) = usage();
    println!(
        "{:.1} {} {} {} {} {:.0}",
        elapsed.as_secs_f64() * 1000.0,
        rss,
        outcome.changes.added.len(),
        outcome.changes.kept.len(),
        outcome.written,
        cpu
    );
}

fn measure(label: &str, inventory: &Path) {
    let out = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, inventory)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "{label}: the measured run failed");
    let line = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = line.split_whitespace().collect();
    println!(
        "{label:<46} {:>8} ms wall {:>7} ms CPU   peak RSS {:>6} KiB   added {:>5}  kept {:>5}  written {}",
        fields[0], fields[5], fields[1], fields[2], fields[3], fields[4]
    );
}

/// Copies a cluster folder as the operator's checkout holds it: hard links stay hard links,
/// so the spare beside the bundle (the previous bundle, sharing its unchanged files' inodes)
/// arrives as a spare rather than as 8000 unrelated copies.
fn copy_tree(from: &Path, to: &Path) {
    copy_tree_linked(from, to, &mut std::collections::HashMap::new());
}

fn copy_tree_linked(from: &Path, to: &Path, seen: &mut std::collections::HashMap<u64, PathBuf>) {
    use std::os::unix::fs::MetadataExt;
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            copy_tree_linked(&entry.path(), &target, seen);
        } else if let Some(first) = seen.get(&meta.ino()).filter(|_| meta.nlink() > 1) {
            fs::hard_link(first, target).unwrap();
        } else {
            fs::copy(entry.path(), &target).unwrap();
            seen.insert(meta.ino(), target);
        }
    }
}

/// The same folder as a fresh `git clone` has it: no spare, so the next run links every kept file.
fn drop_spare(cluster: &Path) {
    let _ = fs::remove_dir_all(cluster.join("hosts/.pki.kubepki-spare"));
}

fn synthetic_ip(i: usize) -> String {
    format!("172.16.{}.{}", i / 250, i % 250 + 1)
}

fn node_toml(i: usize, ip: &str) -> String {
    let roles = if i == 0 {
        "[\"control-plane\", \"etcd\"]"
    } else {
        "[\"worker\"]"
    };
    format!(
        "\n[[nodes]]\nname = \"node-{i}\"\nroles = {roles}\nhost_key = \"node-{i}/ssh_host_ed25519_key.pub\"\nnode_ip = \"{ip}\"\n\n[nodes.addresses]\nlan = [\"{ip}\"]\n"
    )
}

fn write_host_key(dir: &Path, i: usize) {
    let key = ssh_key::PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519)
        .expect("ed25519 key generation");
    let public = key.public_key().to_openssh().expect("openssh encoding");
    let folder = dir.join(format!("node-{i}"));
    fs::create_dir_all(&folder).unwrap();
    fs::write(folder.join("ssh_host_ed25519_key.pub"), public + "\n").unwrap();
}

/// A synthetic inventory of `nodes` nodes in `dir/hosts`.
fn synthetic(dir: &Path, nodes: usize) -> PathBuf {
    let hosts = dir.join("hosts");
    fs::create_dir_all(&hosts).unwrap();
    let operator = fs::read_to_string(repo().join("tests/keys/operator/id_ed25519.pub")).unwrap();
    let mut toml = format!(
        "[cluster]\nname = \"bench\"\n\n[api]\nendpoints = [\"api.bench.example\"]\n\n\
[network]\nservice_cidrs = [\"10.96.0.0/12\"]\npod_cidrs = [\"10.244.0.0/16\"]\nlan_cidrs = [\"172.16.0.0/12\"]\n\n\
[pki]\nalgorithm = \"ecdsa-p256\"\n\n\
[[operators]]\nname = \"bench\"\nrecipients = [\"{}\"]\n",
        operator.trim()
    );
    for i in 0..nodes {
        write_host_key(&hosts, i);
        toml.push_str(&node_toml(i, &synthetic_ip(i)));
    }
    let path = hosts.join("cluster.toml");
    fs::write(&path, toml).unwrap();
    path
}

fn scenario(root: &Path, label: &str, base: &Path, extra_node: usize, extra_ip: &str) {
    // First run: a fresh copy with no bundle.
    let full = root.join(format!("{label}-full"));
    copy_tree(base, &full);
    let inventory = full.join("hosts/cluster.toml");
    measure(&format!("{label}: first run"), &inventory);
    measure(&format!("{label}: no-op re-run"), &inventory);
    // Add one node to a copy of the finished cluster, as the operator's checkout holds it,
    // then again to a fresh clone of it (no spare).
    for (suffix, fresh) in [("add", false), ("add-fresh", true)] {
        let added = root.join(format!("{label}-{suffix}"));
        copy_tree(&full, &added);
        if fresh {
            drop_spare(&added);
        }
        let hosts = added.join("hosts");
        write_host_key(&hosts, extra_node);
        let path = hosts.join("cluster.toml");
        let mut toml = fs::read_to_string(&path).unwrap();
        toml.push_str(&node_toml(extra_node, extra_ip));
        fs::write(&path, toml).unwrap();
        let what = if fresh {
            "add one node (fresh clone)"
        } else {
            "add one node"
        };
        measure(&format!("{label}: {what}"), &path);
    }
}

fn main() {
    if let Some(path) = std::env::var_os(CHILD) {
        child(Path::new(&path));
        return;
    }
    let root = tempfile::tempdir().unwrap();
    // KUBEPKI_BENCH_KEEP=1 leaves the clusters behind for profiling.
    let (root, _guard) = if std::env::var_os("KUBEPKI_BENCH_KEEP").is_some() {
        let kept = root.keep();
        println!("clusters left in {}", kept.display());
        (kept, None)
    } else {
        (root.path().to_path_buf(), Some(root))
    };
    println!(
        "recreate on {} cores (rayon), ECDSA P-256",
        rayon::current_num_threads()
    );

    let example = root.as_path().join("example-base");
    copy_tree(&repo().join("hosts"), &example.join("hosts"));
    let _ = fs::remove_dir_all(example.join("hosts/pki"));
    drop_spare(&example);
    // The copy must not carry the repository's pins: they would name another CA.
    let toml_path = example.join("hosts/cluster.toml");
    let toml = fs::read_to_string(&toml_path).unwrap();
    let unpinned = match toml.find("[pki.pins]") {
        Some(start) => {
            let end = toml[start..]
                .find("\n\n")
                .map_or(toml.len(), |e| start + e + 2);
            format!("{}{}", &toml[..start], &toml[end..])
        }
        None => toml,
    };
    fs::write(&toml_path, unpinned).unwrap();
    scenario(
        root.as_path(),
        "example (4 nodes)",
        &example,
        9,
        "192.168.0.99",
    );

    for nodes in [100usize, 1000] {
        let base = root.as_path().join(format!("synthetic-{nodes}"));
        synthetic(&base, nodes);
        scenario(
            root.as_path(),
            &format!("{nodes} nodes"),
            &base,
            nodes,
            &synthetic_ip(nodes),
        );
    }
}
