//! Pushing the current branch to its configured upstream.
//!
//! Credentials are tried in the order git users expect: the ssh-agent for SSH
//! remotes, then the git credential helper (`credential.helper`) for HTTPS,
//! then libgit2's default (Kerberos/NTLM). kubepki never asks for or stores a
//! password itself, never force-pushes and never sets an upstream: a branch
//! without one is an error that says how to set it.

use std::cell::RefCell;

use git2::{Cred, CredentialType, PushOptions, RemoteCallbacks, Repository};
use serde::Serialize;

use super::PublishError;

/// Where a push went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushTarget {
    pub remote: String,
    pub url: String,
    /// The remote branch, e.g. `refs/heads/main`.
    pub reference: String,
}

pub(super) fn push_current_branch(repo: &Repository) -> Result<PushTarget, PublishError> {
    let head = repo.head().map_err(|_| PublishError::DetachedHead)?;
    if !head.is_branch() {
        return Err(PublishError::DetachedHead);
    }
    let local = head
        .name()
        .map_err(|_| PublishError::DetachedHead)?
        .to_string();
    let branch = head.shorthand().unwrap_or(local.as_str()).to_string();
    let no_upstream = || PublishError::NoUpstream {
        branch: branch.clone(),
    };
    let remote_name = repo
        .branch_upstream_remote(&local)
        .ok()
        .and_then(|b| b.as_str().ok().map(str::to_string))
        .ok_or_else(no_upstream)?;
    let reference = repo
        .branch_upstream_merge(&local)
        .ok()
        .and_then(|b| b.as_str().ok().map(str::to_string))
        .ok_or_else(no_upstream)?;
    let mut remote = repo.find_remote(&remote_name).map_err(|_| no_upstream())?;
    let url = remote
        .pushurl()
        .ok()
        .flatten()
        .or_else(|| remote.url().ok())
        .unwrap_or_default()
        .to_string();

    let config = repo.config().ok();
    let rejected: RefCell<Option<String>> = RefCell::new(None);
    let mut tried = CredentialType::empty();
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(|url, username, allowed| {
        let user = username.unwrap_or("git");
        if allowed.contains(CredentialType::SSH_KEY) && !tried.contains(CredentialType::SSH_KEY) {
            tried |= CredentialType::SSH_KEY;
            return Cred::ssh_key_from_agent(user);
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
            && !tried.contains(CredentialType::USER_PASS_PLAINTEXT)
        {
            tried |= CredentialType::USER_PASS_PLAINTEXT;
            if let Some(config) = &config {
                return Cred::credential_helper(config, url, username);
            }
        }
        if allowed.contains(CredentialType::DEFAULT) && !tried.contains(CredentialType::DEFAULT) {
            tried |= CredentialType::DEFAULT;
            return Cred::default();
        }
        if allowed.contains(CredentialType::USERNAME) && !tried.contains(CredentialType::USERNAME)
        {
            tried |= CredentialType::USERNAME;
            return Cred::username(user);
        }
        Err(git2::Error::from_str(
            "no credential was accepted (tried ssh-agent, the git credential helper, and the default)",
        ))
    });
    callbacks.push_update_reference(|_reference, status| {
        if let Some(message) = status {
            *rejected.borrow_mut() = Some(message.to_string());
        }
        Ok(())
    });
    let mut options = PushOptions::new();
    options.remote_callbacks(callbacks);
    let refspec = format!("{local}:{reference}");
    remote
        .push(&[refspec.as_str()], Some(&mut options))
        .map_err(|source| PublishError::Push {
            branch: branch.clone(),
            remote: remote_name.clone(),
            url: url.clone(),
            source,
        })?;
    drop(options);
    if let Some(message) = rejected.into_inner() {
        return Err(PublishError::PushRejected {
            remote: remote_name,
            reference,
            message,
        });
    }
    Ok(PushTarget {
        remote: remote_name,
        url,
        reference,
    })
}
