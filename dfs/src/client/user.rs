//! Who the user is, for every Sheaf client: file owners, `/user/<user>` home directories,
//! staging directories and application owners all use this one rule.

/// User name when the environment names none (Hadoop's superuser convention for a
/// pseudo-cluster).
const FALLBACK_USER: &str = "root";

/// The current user: `$USER`, else `$LOGNAME` (the login name when `$USER` is not exported),
/// else `root`. Empty values count as unset.
pub fn current_user() -> String {
    user_from(|name| std::env::var(name).ok())
}

/// The user's DFS home directory, `/user/<user>`, against which relative paths resolve.
pub fn home_dir(user: &str) -> String {
    format!("/user/{user}")
}

/// [`current_user`] over any environment (tests give a map instead of the process's).
fn user_from(var: impl Fn(&str) -> Option<String>) -> String {
    ["USER", "LOGNAME"]
        .into_iter()
        .filter_map(|name| var(name).filter(|v| !v.is_empty()))
        .next()
        .unwrap_or_else(|| FALLBACK_USER.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn user_comes_from_user_then_logname_then_root() {
        assert_eq!(
            user_from(env(&[("USER", "alice"), ("LOGNAME", "bob")])),
            "alice"
        );
        assert_eq!(user_from(env(&[("USER", ""), ("LOGNAME", "bob")])), "bob");
        assert_eq!(user_from(env(&[("LOGNAME", "bob")])), "bob");
        assert_eq!(user_from(env(&[("USER", "")])), "root");
        assert_eq!(user_from(env(&[])), "root");
    }

    #[test]
    fn home_is_under_user() {
        assert_eq!(home_dir("alice"), "/user/alice");
    }
}
