//! The trash emptier (Hadoop's `TrashPolicyDefault.Emptier`): once per trash interval, every
//! user's `.Trash/Current` becomes a checkpoint and checkpoints older than the interval are
//! deleted, through the same requests a client sends (so they are logged, checked and their
//! blocks invalidated like any delete).

use super::{Namesystem, Now};
use crate::namenode::permissions::Caller;
use crate::protocol::{ClientRequest, FileKind, NamenodeReply};
use crate::trash::{checkpoint_name, expired, CURRENT, TRASH_DIR};
use std::net::{IpAddr, Ipv4Addr};

impl Namesystem {
    /// One emptier pass (nothing while in safe mode or with the trash off).
    pub fn empty_trash(&mut self, now: Now) {
        let interval = self.cfg.trash_interval_ms;
        if interval == 0 || self.safe_mode.is_on() {
            return;
        }
        let emptier = Caller {
            user: "trash-emptier".into(),
            groups: Vec::new(),
            superuser: true,
        };
        let here = IpAddr::V4(Ipv4Addr::LOCALHOST);
        // Every change goes through the client protocol, as the emptier's own requests.
        let call =
            |sys: &mut Namesystem, req: ClientRequest| sys.handle_client(req, now, here, &emptier);
        let list = |sys: &mut Namesystem, path: &str| match call(
            sys,
            ClientRequest::ListStatus { path: path.into() },
        ) {
            Ok(NamenodeReply::Listing(entries)) => entries,
            _ => Vec::new(),
        };
        for home in list(self, "/user") {
            if home.kind != FileKind::Directory {
                continue;
            }
            let root = format!("{}/{TRASH_DIR}", home.path);
            let names: Vec<String> = list(self, &root)
                .iter()
                .map(|e| crate::path::file_name(&e.path).to_string())
                .collect();
            if names.iter().any(|n| n == CURRENT) {
                let checkpoint = format!("{root}/{}", checkpoint_name(now.wall_ms));
                let src = format!("{root}/{CURRENT}");
                let dst = checkpoint.clone();
                match call(self, ClientRequest::Rename { src, dst }) {
                    Ok(_) => tracing::info!(%checkpoint, "trash checkpoint made"),
                    Err(e) => tracing::warn!(%root, error = %e, "cannot checkpoint the trash"),
                }
            }
            for name in expired(&names, now.wall_ms, interval) {
                let path = format!("{root}/{name}");
                let req = ClientRequest::Delete {
                    path: path.clone(),
                    recursive: true,
                };
                match call(self, req) {
                    Ok(_) => tracing::info!(%path, "expired trash checkpoint deleted"),
                    Err(e) => tracing::warn!(%path, error = %e, "cannot delete a trash checkpoint"),
                }
            }
        }
    }
}
