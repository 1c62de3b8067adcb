//! Publishing to git: exactly the changed bundle files are committed, with a message that says
//! what and why; checked with git2 and with the `git` CLI.

use std::fs;
use std::path::{Path, PathBuf};

mod basics;

use basics::git;
use kubepki::publish::{
    ChangedFile, FileChange, Publication, PublishError, PublishOptions, Published, publish,
};

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// A repository with an inventory and a committed bundle in hosts/pki, plus unrelated clutter.
fn repo() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    git(&root, &["init", "-q", "-b", "main"]);
    git(&root, &["config", "user.name", "Test Operator"]);
    git(&root, &["config", "user.email", "operator@example.org"]);
    write(&root.join("README.md"), "cluster\n");
    write(
        &root.join("hosts/cluster.toml"),
        "[cluster]\nname = \"t\"\n",
    );
    write(&root.join("hosts/pki/ca/kubernetes.crt"), "ca v1\n");
    write(&root.join("hosts/pki/nodes/a/kubelet-client.crt"), "a v1\n");
    write(&root.join("hosts/pki/nodes/b/kubelet-client.crt"), "b v1\n");
    git(&root, &["add", "."]);
    git(&root, &["commit", "-q", "-m", "initial"]);
    (dir, root)
}

fn changed(path: PathBuf, change: FileChange, reason: &str) -> ChangedFile {
    ChangedFile {
        path,
        change,
        reason: reason.into(),
    }
}

/// Rewrites node `a`'s kubelet-client certificate and describes that as a renewal.
fn renew_one(pki: &Path) -> Publication {
    let cert = pki.join("nodes/a/kubelet-client.crt");
    write(&cert, "a v2\n");
    Publication {
        subject: "kubepki: renew 1 expiring".into(),
        files: vec![changed(cert, FileChange::Modified, "expiring")],
    }
}

fn head(root: &Path) -> String {
    git(root, &["rev-parse", "HEAD"]).trim().to_string()
}

#[test]
fn commits_exactly_the_changed_files_with_what_and_why() {
    let (_dir, root) = repo();
    let pki = root.join("hosts/pki");
    // What the run did:
    write(&pki.join("nodes/c/kubelet-client.crt"), "c v1\n");
    write(&pki.join("nodes/a/kubelet-client.crt"), "a v2\n");
    fs::remove_dir_all(pki.join("nodes/b")).unwrap();
    write(
        &root.join("hosts/cluster.toml"),
        "[cluster]\nname = \"t\"\n# pins\n",
    );
    // What the operator has lying around, which must stay out of the commit:
    write(&root.join("README.md"), "cluster, edited\n");
    write(&root.join("notes.txt"), "untracked\n");
    write(&pki.join("nodes/a/stray.crt"), "not ours\n");

    let publication = Publication {
        subject: "kubepki: add node c (1 cert); remove node b; renew 1 expiring".into(),
        files: vec![
            changed(
                pki.join("nodes/c/kubelet-client.crt"),
                FileChange::Added,
                "new node c",
            ),
            changed(
                pki.join("nodes/a/kubelet-client.crt"),
                FileChange::Modified,
                "expires in 12 days",
            ),
            changed(
                pki.join("nodes/b/kubelet-client.crt"),
                FileChange::Deleted,
                "node b removed",
            ),
            changed(
                root.join("hosts/cluster.toml"),
                FileChange::Modified,
                "CA pins",
            ),
        ],
    };
    let before = head(&root);
    let published = publish(&pki, &publication, PublishOptions::commit()).unwrap();
    let Published::Committed { commit, files, .. } = published else {
        panic!("expected a commit, got {published:?}");
    };
    assert_eq!(files, 4);
    assert_eq!(commit, head(&root));

    // The git CLI's view.
    let shown = git(
        &root,
        &["show", "--name-status", "--format=%s%n%n%b", "HEAD"],
    );
    let names: Vec<&str> = shown.lines().filter(|l| l.contains('\t')).collect();
    assert_eq!(
        names,
        [
            "M\thosts/cluster.toml",
            "M\thosts/pki/nodes/a/kubelet-client.crt",
            "D\thosts/pki/nodes/b/kubelet-client.crt",
            "A\thosts/pki/nodes/c/kubelet-client.crt",
        ],
        "{shown}"
    );
    assert!(shown.starts_with("kubepki: add node c (1 cert); remove node b; renew 1 expiring\n\n"));
    assert!(
        shown.contains("A hosts/pki/nodes/c/kubelet-client.crt: new node c\n"),
        "{shown}"
    );
    assert!(shown.contains("M hosts/pki/nodes/a/kubelet-client.crt: expires in 12 days\n"));
    assert!(shown.contains("D hosts/pki/nodes/b/kubelet-client.crt: node b removed\n"));
    assert_eq!(git(&root, &["rev-parse", "HEAD~1"]).trim(), before);

    // git2's view: the tree holds the new content, the parent is the old HEAD.
    let repo = git2::Repository::open(&root).unwrap();
    let commit = repo.head().unwrap().peel_to_commit().unwrap();
    assert_eq!(commit.parent_id(0).unwrap().to_string(), before);
    assert_eq!(commit.author().email().ok(), Some("operator@example.org"));
    let tree = commit.tree().unwrap();
    let blob = |path: &str| {
        tree.get_path(Path::new(path))
            .ok()
            .map(|e| String::from_utf8(repo.find_blob(e.id()).unwrap().content().to_vec()).unwrap())
    };
    assert_eq!(
        blob("hosts/pki/nodes/a/kubelet-client.crt").as_deref(),
        Some("a v2\n")
    );
    assert_eq!(
        blob("hosts/pki/nodes/c/kubelet-client.crt").as_deref(),
        Some("c v1\n")
    );
    assert_eq!(blob("hosts/pki/nodes/b/kubelet-client.crt"), None);
    assert_eq!(blob("hosts/pki/nodes/a/stray.crt"), None);
    assert_eq!(blob("notes.txt"), None);
    assert_eq!(blob("README.md").as_deref(), Some("cluster\n"));

    // The clutter is still there, uncommitted and unstaged.
    let status = git(&root, &["status", "--porcelain"]);
    assert_eq!(
        status,
        " M README.md\n?? hosts/pki/nodes/a/stray.crt\n?? notes.txt\n"
    );
}

#[test]
fn an_unchanged_run_makes_no_commit() {
    let (_dir, root) = repo();
    let pki = root.join("hosts/pki");
    let before = head(&root);
    let empty = Publication {
        subject: "kubepki: nothing".into(),
        files: vec![],
    };
    assert_eq!(
        publish(&pki, &empty, PublishOptions::commit()).unwrap(),
        Published::NothingChanged
    );
    // A file reported as rewritten with identical bytes is no change either.
    let same = Publication {
        subject: "kubepki: renew".into(),
        files: vec![changed(
            pki.join("nodes/a/kubelet-client.crt"),
            FileChange::Modified,
            "rewritten",
        )],
    };
    assert_eq!(
        publish(&pki, &same, PublishOptions::commit()).unwrap(),
        Published::NothingChanged
    );
    assert_eq!(head(&root), before);
    assert_eq!(git(&root, &["status", "--porcelain"]), "");
}

#[test]
fn refuses_when_unrelated_changes_are_already_staged() {
    let (_dir, root) = repo();
    let pki = root.join("hosts/pki");
    write(&root.join("README.md"), "staged by the operator\n");
    git(&root, &["add", "README.md"]);
    let before = head(&root);
    let publication = renew_one(&pki);
    let error = publish(&pki, &publication, PublishOptions::commit()).unwrap_err();
    assert!(
        matches!(&error, PublishError::UnrelatedStaged { paths } if paths == &["README.md"]),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains("README.md") && text.contains("git restore --staged"),
        "{text}"
    );
    assert_eq!(head(&root), before);
    // Nothing of ours was staged either.
    assert_eq!(
        git(&root, &["diff", "--cached", "--name-only"]),
        "README.md\n"
    );
}

#[test]
fn no_commit_leaves_git_alone() {
    let (_dir, root) = repo();
    let pki = root.join("hosts/pki");
    let before = head(&root);
    let publication = renew_one(&pki);
    let options = PublishOptions {
        commit: false,
        push: false,
    };
    assert_eq!(
        publish(&pki, &publication, options).unwrap(),
        Published::NotCommitted { files: 1 }
    );
    assert_eq!(head(&root), before);
    assert_eq!(
        git(&root, &["status", "--porcelain"]),
        " M hosts/pki/nodes/a/kubelet-client.crt\n"
    );
}

#[test]
fn push_sends_the_commit_to_the_upstream_branch() {
    let (dir, root) = repo();
    let remote = dir.path().join("remote.git");
    git(dir.path(), &["init", "-q", "--bare", "remote.git"]);
    git(
        &root,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    git(&root, &["push", "-q", "-u", "origin", "main"]);

    let pki = root.join("hosts/pki");
    let publication = renew_one(&pki);
    let options = PublishOptions {
        commit: true,
        push: true,
    };
    let Published::Committed {
        commit, pushed_to, ..
    } = publish(&pki, &publication, options).unwrap()
    else {
        panic!("expected a commit");
    };
    let target = pushed_to.expect("pushed");
    assert_eq!(target.remote, "origin");
    assert_eq!(target.reference, "refs/heads/main");
    assert_eq!(git(&remote, &["rev-parse", "main"]).trim(), commit);
    // The remote-tracking branch follows, so `git status` says "up to date".
    assert_eq!(git(&root, &["rev-parse", "origin/main"]).trim(), commit);
}

#[test]
fn push_without_an_upstream_is_a_clear_error_after_the_local_commit() {
    let (_dir, root) = repo();
    let pki = root.join("hosts/pki");
    let before = head(&root);
    let publication = renew_one(&pki);
    let options = PublishOptions {
        commit: true,
        push: true,
    };
    let error = publish(&pki, &publication, options).unwrap_err();
    assert!(
        matches!(&error, PublishError::NoUpstream { branch } if branch == "main"),
        "{error:?}"
    );
    assert!(error.to_string().contains("git push -u <remote> main"));
    assert_ne!(head(&root), before, "the commit is kept locally");
}

#[test]
fn outside_a_repository_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    write(&pki.join("ca/kubernetes.crt"), "ca\n");
    let publication = Publication {
        subject: "kubepki: create".into(),
        files: vec![changed(
            pki.join("ca/kubernetes.crt"),
            FileChange::Added,
            "new CA",
        )],
    };
    let error = publish(&pki, &publication, PublishOptions::commit()).unwrap_err();
    assert!(
        matches!(error, PublishError::NotARepository { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("--no-commit"));
}
