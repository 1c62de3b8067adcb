//! The commit message: a subject that says what changed, a body that lists every file and why.
//!
//! Pure text assembly; the subject itself is decided by the caller, which
//! knows what the run was about (`add node laptop-ultra (5 certs)`).

use std::fmt;

use super::ChangedFile;

/// A commit message, rendered as subject, blank line, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitMessage {
    pub subject: String,
    pub body: String,
}

impl fmt::Display for CommitMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.body.is_empty() {
            writeln!(f, "{}", self.subject)
        } else {
            write!(f, "{}\n\n{}", self.subject, self.body)
        }
    }
}

/// The message for `files` (paths relative to the repository), one body line per file, sorted by
/// path: `A hosts/pki/nodes/laptop-ultra/kubelet-client.crt: new node laptop-ultra`.
pub fn compose(subject: &str, files: &[ChangedFile]) -> CommitMessage {
    let mut sorted: Vec<&ChangedFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut body = String::new();
    for file in sorted {
        body.push(file.change.letter());
        body.push(' ');
        body.push_str(&file.path.display().to_string());
        if !file.reason.is_empty() {
            body.push_str(": ");
            body.push_str(&file.reason);
        }
        body.push('\n');
    }
    CommitMessage {
        subject: subject.trim().to_string(),
        body,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::FileChange;
    use super::*;

    #[test]
    fn lists_every_file_with_its_reason_sorted_by_path() {
        let files = [
            ChangedFile {
                path: PathBuf::from("hosts/pki/nodes/b/kube-proxy.crt"),
                change: FileChange::Modified,
                reason: "expires in 12 days".into(),
            },
            ChangedFile {
                path: PathBuf::from("hosts/pki/nodes/a/kubelet-client.crt"),
                change: FileChange::Added,
                reason: "new node a".into(),
            },
        ];
        let message = compose("kubepki: add node a (1 cert); renew 1 expiring", &files);
        assert_eq!(
            message.to_string(),
            "kubepki: add node a (1 cert); renew 1 expiring\n\n\
             A hosts/pki/nodes/a/kubelet-client.crt: new node a\n\
             M hosts/pki/nodes/b/kube-proxy.crt: expires in 12 days\n"
        );
    }
}
