//! Activation time on the control-plane node: a full install into a fresh target, and a
//! no-op re-run with the same bundle. Targets: install <= 30 ms, no-op <= 10 ms.
//!
//! The target lives on /dev/shm (tmpfs, like /run) when it exists. Prints wall-clock figures
//! and the CPU time of all threads (decryption is parallel), which stays meaningful on a
//! loaded machine, plus the time of each phase of the no-op run.

#[path = "../tests/activate_support/mod.rs"]
mod activate_support;

use std::time::{Duration, Instant};

use activate_support::Fixture;
use kubepki::activate::{self, Outcome, identity, source, unseal, verify};

const ROUNDS: usize = 30;

fn main() {
    let fixture = Fixture::new();
    let shm = std::path::Path::new("/dev/shm");
    let scratch = if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("a folder on /dev/shm")
    } else {
        tempfile::tempdir().expect("a temporary folder")
    };
    let node = "ec2-controlplane";

    let mut install = Vec::new();
    let mut noop = Vec::new();
    let mut install_cpu = Vec::new();
    let mut noop_cpu = Vec::new();
    for round in 0..ROUNDS {
        let mut request = fixture.request(node);
        request.target = scratch.path().join(format!("target-{round}"));

        let (start, cpu) = (Instant::now(), cpu_time());
        let report = activate::activate(&request).expect("install");
        install.push(start.elapsed());
        install_cpu.push(cpu_time() - cpu);
        assert!(matches!(report.outcome, Outcome::Installed { .. }));

        let (start, cpu) = (Instant::now(), cpu_time());
        let report = activate::activate(&request).expect("no-op");
        noop.push(start.elapsed());
        noop_cpu.push(cpu_time() - cpu);
        assert!(matches!(report.outcome, Outcome::Unchanged { .. }));
    }
    let files = fixture
        .plan
        .node(node)
        .map_or(0, |n| n.files.len() + n.kubeconfigs.len());
    println!(
        "activate {node} ({files} files, target on {}):",
        scratch.path().display()
    );
    report(
        "install into a fresh target",
        &mut install,
        &mut install_cpu,
        30,
    );
    report("no-op re-run (same bundle)", &mut noop, &mut noop_cpu, 10);

    // For information: a worker whose host key is RSA-3072 (RSA-OAEP per sealed file).
    let mut rsa = Vec::new();
    let mut rsa_cpu = Vec::new();
    for round in 0..ROUNDS {
        let mut request = fixture.request("laptop-old");
        request.target = scratch.path().join(format!("rsa-{round}"));
        let (start, cpu) = (Instant::now(), cpu_time());
        activate::activate(&request).expect("install laptop-old");
        rsa.push(start.elapsed());
        rsa_cpu.push(cpu_time() - cpu);
    }
    println!("activate laptop-old (RSA-3072 host key), for information:");
    report("install into a fresh target", &mut rsa, &mut rsa_cpu, 30);

    // Where the time goes, CPU per phase (median over the rounds).
    let request = fixture.request(node);
    let mut phases: [Vec<Duration>; 4] = Default::default();
    for _ in 0..ROUNDS {
        let t = cpu_time();
        let bundle = source::read(&request.bundle, node).expect("read");
        let t1 = cpu_time();
        let identities = identity::load(&request.identities).expect("identities");
        let t2 = cpu_time();
        let plain = unseal::unseal_all(&bundle, &identities).expect("unseal");
        let t3 = cpu_time();
        let clock = verify::Clock {
            now: time::OffsetDateTime::now_utc().unix_timestamp(),
            renew_before_days: 30,
        };
        verify::verify_all(&bundle, &plain, &request.pins, clock).expect("verify");
        let t4 = cpu_time();
        for (i, d) in [t1 - t, t2 - t1, t3 - t2, t4 - t3].into_iter().enumerate() {
            phases[i].push(d);
        }
    }
    let sealed = fixture.plan.node(node).map_or(0, |n| {
        n.files
            .iter()
            .filter(|f| f.source.ends_with(".age"))
            .count()
    });
    println!("  phases (CPU of all threads, median):");
    for (name, samples) in [
        "read + hash the bundle files",
        "load the host identity",
        "decrypt the sealed files",
        "verify (pins, signatures, keys, names)",
    ]
    .iter()
    .zip(phases.iter_mut())
    {
        samples.sort();
        println!("    {name:40} {:6.2} ms", ms(samples[samples.len() / 2]));
    }
    println!("  ({sealed} sealed files: three X25519 and an HKDF each, in age)");
}

/// CPU time of the whole process (all threads: decryption runs on several).
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe {
        libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts);
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn report(what: &str, samples: &mut [Duration], cpu: &mut [Duration], target_ms: u64) {
    samples.sort();
    cpu.sort();
    let median = samples[samples.len() / 2];
    let best = samples[0];
    let worst = samples[samples.len() - 1];
    let verdict = if median <= Duration::from_millis(target_ms) {
        "ok"
    } else {
        "OVER TARGET"
    };
    println!(
        "  {what:30} wall median {:6.2} ms best {:6.2} ms worst {:6.2} ms | CPU {:6.2} ms (target {target_ms} ms: {verdict})",
        ms(median),
        ms(best),
        ms(worst),
        ms(cpu[cpu.len() / 2])
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
