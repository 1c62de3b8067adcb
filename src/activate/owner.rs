//! Owners by name: user and group names from the plan resolved to uid/gid on this host.
//!
//! Resolution goes through NSS (`getpwnam_r`, `getgrnam_r`), so it sees
//! users created by NixOS activation, systemd-sysusers or userborn. When
//! activation does not run as root it cannot chown; then every file keeps the
//! running user's ids and the caller warns once. Tests may supply a fixed table.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;

use super::ActivateError;

/// Numeric owner of an installed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// Where names are resolved.
#[derive(Debug, Clone)]
pub enum Accounts {
    /// The host's user and group databases (NSS).
    System,
    /// A fixed table of user and group names (tests, or a root without the service users).
    Fixed {
        users: BTreeMap<String, u32>,
        groups: BTreeMap<String, u32>,
    },
}

/// Whether files can be given away.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The running user's ids, used as every file's owner when chown is impossible.
pub fn running_owner() -> Owner {
    // SAFETY: geteuid/getegid have no preconditions and cannot fail.
    unsafe {
        Owner {
            uid: libc::geteuid(),
            gid: libc::getegid(),
        }
    }
}

impl Accounts {
    /// Resolves `user`/`group` for `file` (an install name, for messages).
    pub fn resolve(&self, file: &str, user: &str, group: &str) -> Result<Owner, ActivateError> {
        let (uid, gid) = match self {
            Accounts::System => (lookup_user(user)?, lookup_group(group)?),
            Accounts::Fixed { users, groups } => {
                (users.get(user).copied(), groups.get(group).copied())
            }
        };
        let uid = uid.ok_or_else(|| ActivateError::OwnerUserMissing {
            file: file.to_string(),
            user: user.to_string(),
        })?;
        let gid = gid.ok_or_else(|| ActivateError::OwnerGroupMissing {
            file: file.to_string(),
            group: group.to_string(),
        })?;
        Ok(Owner { uid, gid })
    }
}

fn c_name(name: &str) -> Result<CString, ActivateError> {
    CString::new(name).map_err(|_| ActivateError::AccountLookup {
        name: name.to_string(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "the name contains a NUL byte"),
    })
}

/// The uid of `name`, or `None` when no such user exists.
fn lookup_user(name: &str) -> Result<Option<u32>, ActivateError> {
    lookup_id(name, |c, buf| {
        // SAFETY: passwd is plain data; all pointers are valid for the call, `buf` outlives it.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwnam_r(
                c.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        (rc, (!result.is_null()).then_some(pwd.pw_uid))
    })
}

/// The gid of `name`, or `None` when no such group exists.
fn lookup_group(name: &str) -> Result<Option<u32>, ActivateError> {
    lookup_id(name, |c, buf| {
        // SAFETY: group is plain data; all pointers are valid for the call, `buf` outlives it.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = unsafe {
            libc::getgrnam_r(
                c.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        (rc, (!result.is_null()).then_some(grp.gr_gid))
    })
}

/// Runs a reentrant `get*nam_r` call, growing its buffer on ERANGE; "not found" is `None`.
fn lookup_id(
    name: &str,
    mut call: impl FnMut(&CString, &mut [u8]) -> (i32, Option<u32>),
) -> Result<Option<u32>, ActivateError> {
    let c = c_name(name)?;
    let mut buf = vec![0u8; 4096];
    loop {
        match call(&c, &mut buf) {
            (0, id) => return Ok(id),
            (libc::ERANGE, _) if buf.len() < 1 << 20 => {
                let bigger = buf.len() * 2;
                buf.resize(bigger, 0);
            }
            (libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM, _) => return Ok(None),
            (errno, _) => {
                return Err(ActivateError::AccountLookup {
                    name: name.to_string(),
                    source: io::Error::from_raw_os_error(errno),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_resolves_to_zero() {
        let owner = Accounts::System.resolve("f", "root", "root").unwrap();
        assert_eq!(owner, Owner { uid: 0, gid: 0 });
    }

    #[test]
    fn a_missing_user_is_named() {
        let err = Accounts::System
            .resolve("apiserver.key", "no-such-user-kubepki", "root")
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("`no-such-user-kubepki` does not exist"),
            "{err}"
        );
        assert!(err.to_string().starts_with("apiserver.key:"), "{err}");
    }
}
