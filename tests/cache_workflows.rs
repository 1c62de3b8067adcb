//! The GitHub Actions workflows: they parse, the push job has exactly the
//! permissions and credentials it needs, and the step that reads the cache
//! settings from hosts/cluster.toml is run for real (bash + Nix) here.

mod cache_support;

use std::path::Path;
use std::process::Command;

use cache_support::{Cluster, repo, require_tool};
use serde_yaml::Value;

fn workflow(name: &str) -> Value {
    let path = repo().join(".github/workflows").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn steps(job: &Value) -> &Vec<Value> {
    job["steps"].as_sequence().unwrap()
}

fn step_using<'a>(job: &'a Value, action: &str) -> &'a Value {
    steps(job)
        .iter()
        .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(action)))
        .unwrap_or_else(|| panic!("no step uses {action}"))
}

fn all_run_text(job: &Value) -> String {
    steps(job)
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn ci_runs_the_project_tests_with_lints() {
    let ci = workflow("ci.yml");
    let job = &ci["jobs"]["test"];
    assert_eq!(job["runs-on"], "ubuntu-latest");
    let run = all_run_text(job);
    assert!(run.contains("bash .ci/run"), "{run}");
    assert!(run.contains("nix-bin"), "{run}");
    assert!(
        run.contains("cargo clippy --all-targets -- -D warnings"),
        "{run}"
    );
    assert!(run.contains("NIXPKGS_LIB="), "{run}");
}

#[test]
fn the_push_job_gets_oidc_credentials_and_nothing_more() {
    let cache = workflow("cache.yml");
    assert_eq!(cache["permissions"]["contents"], "read");
    let push = &cache["jobs"]["push"];
    assert_eq!(push["permissions"]["id-token"], "write");
    assert_eq!(push["permissions"]["contents"], "read");
    assert_eq!(push["permissions"].as_mapping().unwrap().len(), 2);
    let aws = step_using(push, "aws-actions/configure-aws-credentials");
    assert!(aws["with"]["role-to-assume"].as_str().is_some());
    assert_eq!(
        aws["with"]["aws-region"],
        "${{ needs.settings.outputs.region }}"
    );
    // One build per host, from the flake's list, not typed here.
    assert_eq!(
        push["strategy"]["matrix"]["host"],
        "${{ fromJSON(needs.settings.outputs.hosts) }}"
    );
    let settings = all_run_text(&cache["jobs"]["settings"]);
    assert!(
        settings.contains("nix eval --json .#nixosConfigurations --apply builtins.attrNames"),
        "{settings}"
    );
}

#[test]
fn the_push_signs_with_a_temporary_key_file_and_zstd() {
    let cache = workflow("cache.yml");
    let push = &cache["jobs"]["push"];
    let run = all_run_text(push);
    assert!(run.contains("umask 077"), "{run}");
    assert!(run.contains("trap 'rm -f \"$keyfile\"' EXIT"), "{run}");
    assert!(
        run.contains("nix copy --to \"$PUSH_URL&secret-key=$keyfile\""),
        "{run}"
    );
    assert!(run.contains("--sigs-needed 1"), "{run}");
    let signing = steps(push)
        .iter()
        .find(|s| s["run"].as_str().is_some_and(|r| r.contains("nix copy")))
        .unwrap();
    assert_eq!(
        signing["env"]["NIX_CACHE_SIGNING_KEY"],
        "${{ secrets.NIX_CACHE_SIGNING_KEY }}"
    );
    // The secret never appears on a command line or in the step's script.
    assert!(!run.contains("secrets."), "{run}");
}

#[test]
fn nix_is_pinned_to_a_release_with_the_sts_web_identity_provider() {
    let cache = workflow("cache.yml");
    let url = cache["env"]["NIX_INSTALL_URL"].as_str().unwrap();
    let version = url
        .split("/nix-")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no pinned version in {url}"));
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap());
    let (major, minor) = (parts.next().unwrap(), parts.next().unwrap());
    assert_eq!(major, 2);
    assert!(
        !(33..=34).contains(&minor),
        "Nix {version} lacks the STS web-identity provider"
    );
    for job in ["settings", "push"] {
        let install = step_using(&cache["jobs"][job], "cachix/install-nix-action");
        assert_eq!(install["with"]["install_url"], "${{ env.NIX_INSTALL_URL }}");
    }
}

/// Runs the workflow's "read the cache settings" step with bash and Nix 2.8 in `dir`.
fn run_settings_step(dir: &Path) -> (bool, String, String) {
    require_tool("bash");
    require_tool("nix");
    let cache = workflow("cache.yml");
    let step = steps(&cache["jobs"]["settings"])
        .iter()
        .find(|s| s["id"] == "cache")
        .unwrap();
    let script = step["run"].as_str().unwrap();
    let output_file = dir.join("github-output");
    std::fs::write(&output_file, "").unwrap();
    let out = Command::new("bash")
        .args(["-e", "-c", script])
        .current_dir(dir)
        .env("GITHUB_OUTPUT", &output_file)
        .env("NIX_CONFIG", "experimental-features = nix-command")
        .output()
        .unwrap();
    (
        out.status.success(),
        std::fs::read_to_string(&output_file).unwrap(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_settings_step_reads_url_region_and_key_from_the_inventory() {
    let cluster = Cluster::new();
    let public = cluster.create_key();
    let (ok, outputs, log) = run_settings_step(cluster.dir.path());
    assert!(ok, "{log}");
    assert!(
        outputs.contains("url=s3://ducksnest-cache?region=ap-northeast-2\n"),
        "{outputs}"
    );
    assert!(outputs.contains("region=ap-northeast-2\n"), "{outputs}");
    assert!(
        outputs.contains("push-url=s3://ducksnest-cache?region=ap-northeast-2&compression=zstd\n"),
        "{outputs}"
    );
    assert!(
        outputs.contains(&format!("public-key={public}\n")),
        "{outputs}"
    );
}

#[test]
fn the_settings_step_defaults_the_region_and_refuses_non_s3_urls() {
    let cluster = Cluster::new();
    let out = cluster.kubepki(&["cache-key", "--url", "s3://plain-bucket"]);
    cache_support::assert_success(&out, "kubepki cache-key");
    let (ok, outputs, log) = run_settings_step(cluster.dir.path());
    assert!(ok, "{log}");
    assert!(outputs.contains("region=us-east-1\n"), "{outputs}");
    assert!(
        outputs.contains("push-url=s3://plain-bucket?compression=zstd\n"),
        "{outputs}"
    );

    let other = Cluster::new();
    let out = other.kubepki(&["cache-key", "--url", "https://cache.example.org"]);
    cache_support::assert_success(&out, "kubepki cache-key");
    let (ok, _, log) = run_settings_step(other.dir.path());
    assert!(!ok);
    assert!(log.contains("::error"), "{log}");
}

#[test]
fn the_settings_step_fails_without_a_cache_key() {
    let cluster = Cluster::new();
    let (ok, outputs, log) = run_settings_step(cluster.dir.path());
    assert!(!ok);
    assert!(outputs.is_empty(), "{outputs}");
    assert!(log.contains("kubepki cache-key"), "{log}");
}
