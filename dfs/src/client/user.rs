//! Who the user is, for every Sheaf client: file owners, `/user/<user>` home directories,
//! staging directories and application owners all use this one rule.

/// The OS user running this process (`$USER`, else `$LOGNAME`, else `root`): the fallback name
/// where no certificate says who the user is.
pub fn current_user() -> String {
    sheaf_rpc::identity::os_user()
}

/// The user's DFS home directory, `/user/<user>`, against which relative paths resolve.
pub fn home_dir(user: &str) -> String {
    format!("/user/{user}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_is_under_user() {
        assert_eq!(home_dir("alice"), "/user/alice");
    }
}
