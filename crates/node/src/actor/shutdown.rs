//! Admin shutdown commands in the actor: publishing one signed elsewhere,
//! deciding whether to obey one heard, and handing an obeyed one to the
//! seeds, which are outside the overlay and would not hear of it.
//!
//! The checks themselves (admin key, network, age, replay) are in
//! [`crate::admin`]; this part keeps the decision and when to leave.

use bytes::Bytes;
use gossipnet_proto::wire::Message;
use gossipnet_proto::{Command, InEvent, MessageId, NodeId};
use tokio::time::Instant;
use tracing::warn;

use super::driver::Encoded;
use super::{Actor, SHUTDOWN_GRACE};
use crate::admin::{self, AdminState};
use crate::time::unix_ms;
use crate::NodeError;

/// Admin commands obeyed so far, and the leave one of them ordered.
pub(super) struct Shutdown {
    /// Refuses replays, across restarts.
    admin: AdminState,
    /// When to leave, once a command is obeyed.
    at: Option<Instant>,
}

impl Shutdown {
    pub(super) fn new(admin: AdminState) -> Self {
        Self { admin, at: None }
    }

    /// Whether a command has been obeyed and the node is about to leave.
    pub(super) fn pending(&self) -> bool {
        self.at.is_some()
    }

    /// When to leave, if a command was obeyed.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.at
    }
}

impl Actor {
    /// Broadcasts an admin command signed elsewhere, then obeys it here too
    /// if it is good (a node is not delivered its own broadcasts).
    pub(super) async fn publish_admin(&mut self, command: Bytes) -> Result<MessageId, NodeError> {
        if let Err(refusal) = admin::verify_signed(&command) {
            warn!("refusing shutdown command: {refusal}");
            return Err(refusal.into());
        }
        if !self.role.in_overlay() {
            return Err(NodeError::SeedCannotBroadcast);
        }
        let id = MessageId::of(&command);
        self.proto(InEvent::Command(Command::Broadcast(command.clone())))
            .await;
        if self.on_admin(&command, self.me) {
            self.hand_to_seeds(command).await;
        }
        Ok(id)
    }

    /// Seeds are outside the overlay: an admin command this node obeys is
    /// handed to the seeds it has a link to.
    pub(super) async fn hand_to_seeds(&mut self, command: Bytes) {
        let links = &self.links;
        let seeds: Vec<NodeId> = self.seeds.linked(|id| links.contains(id)).collect();
        let msg = Encoded::new(&Message::Admin(command));
        for seed in seeds {
            self.send_bytes(seed, msg.clone()).await;
        }
    }

    /// Decides whether to obey an admin (shutdown) command; logs either
    /// way. True if obeyed: the node leaves after [`SHUTDOWN_GRACE`].
    pub(super) fn on_admin(&mut self, command: &[u8], from: NodeId) -> bool {
        let id = MessageId::of(command);
        if self.shutdown.pending() || self.leaving {
            return false;
        }
        let checked = self.shutdown.admin.check(
            command,
            &self.config.admin_keys,
            &self.config.network_id,
            unix_ms(),
        );
        match checked {
            Ok((admin, seq)) => {
                if let Err(e) = self.shutdown.admin.obeyed(admin, seq) {
                    warn!("cannot record the shutdown command in the data directory: {e}");
                }
                warn!(
                    command = %id, admin = %admin.short(), via = %from.short(),
                    "shutdown command from an admin key: leaving the network"
                );
                self.shutdown.at = Some(Instant::now() + SHUTDOWN_GRACE);
                true
            }
            Err(refusal) => {
                warn!(command = %id, via = %from.short(), "refusing shutdown command: {refusal}");
                false
            }
        }
    }
}
