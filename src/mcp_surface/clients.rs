//! The clients connected to this process's MCP surface, and what they are
//! told outside of any call: `list_changed` when a downstream's lists change,
//! resource updates to the clients that subscribed, and log messages sent
//! while no call was in flight.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use rmcp::model::{
    LoggingLevel, LoggingMessageNotificationParam, ResourceUpdatedNotification,
    ResourceUpdatedNotificationParam, ServerNotification,
};
use rmcp::service::SubscriptionSink;
use rmcp::{Peer, RoleServer};

use crate::tools::{self, Event, ToolRegistry};

/// Where a client hears what is not an answer: its session (2025-11-25), or
/// a `subscriptions/listen` stream (2026-07-28, which has no sessions).
#[derive(Clone)]
pub(super) enum Channel {
    Session {
        peer: Peer<RoleServer>,
        level: Arc<Mutex<LoggingLevel>>,
    },
    Listen(SubscriptionSink),
}

/// One client that can be told of changes.
struct Listener {
    id: u64,
    channel: Channel,
    /// Resource URIs (as this client sees them) it subscribed to.
    subscriptions: HashSet<String>,
}

impl Listener {
    fn gone(&self) -> bool {
        match &self.channel {
            Channel::Session { peer, .. } => peer.is_transport_closed(),
            Channel::Listen(_) => false, // removed when its listen request ends
        }
    }
}

/// The clients connected to this process's MCP surface: for `list_changed`,
/// log messages sent outside of a call, and resource updates.
#[derive(Clone, Default)]
pub(super) struct Clients(Arc<Mutex<Vec<Listener>>>);

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clients({})", self.lock().len())
    }
}

/// Which list changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Tools,
    Prompts,
    Resources,
}

impl Clients {
    /// Adds a client, forgetting those whose session ended: a listener holds
    /// its session's peer, so one left behind would keep the whole session
    /// alive (found by `bench/soak`: memory grew with every MCP session).
    pub(super) fn add(&self, id: u64, channel: Channel, subscriptions: HashSet<String>) {
        let mut all = self.lock();
        all.retain(|l| !l.gone());
        all.push(Listener {
            id,
            channel,
            subscriptions,
        });
    }

    /// Tells a session that just finished its handshake of the lists that
    /// changed since it began (`began`): a change in between reached no one
    /// (the session was not yet registered), and a client that listed in
    /// `initialize`'s wake would never learn of it.
    pub(super) async fn missed(
        peer: &Peer<RoleServer>,
        began: &tools::Snapshot,
        now: &tools::Snapshot,
    ) {
        let (then, now) = (Lists::of(began), Lists::of(now));
        for list in then.differences(&now) {
            let _ = match list {
                List::Tools => peer.notify_tool_list_changed().await,
                List::Prompts => peer.notify_prompt_list_changed().await,
                List::Resources => peer.notify_resource_list_changed().await,
            };
        }
    }

    pub(super) fn remove(&self, id: u64) {
        self.lock().retain(|l| l.id != id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Listener>> {
        lock(&self.0)
    }

    /// The live channels matching `pick`; forgets the sessions gone.
    fn channels(&self, pick: impl Fn(&Listener) -> bool) -> Vec<Channel> {
        let mut all = self.lock();
        all.retain(|l| !l.gone());
        all.iter()
            .filter(|l| pick(l))
            .map(|l| l.channel.clone())
            .collect()
    }

    async fn changed(&self, list: List) {
        for c in self.channels(|_| true) {
            match c {
                Channel::Session { peer, .. } => {
                    let _ = match list {
                        List::Tools => peer.notify_tool_list_changed().await,
                        List::Prompts => peer.notify_prompt_list_changed().await,
                        List::Resources => peer.notify_resource_list_changed().await,
                    };
                }
                // A listener that did not ask for this list refuses it; fine.
                Channel::Listen(sink) => {
                    let _ = match list {
                        List::Tools => sink.notify_tool_list_changed().await,
                        List::Prompts => sink.notify_prompt_list_changed().await,
                        List::Resources => sink.notify_resource_list_changed().await,
                    };
                }
            }
        }
    }

    /// A log message sent outside of any call: to every session whose level
    /// admits it (2026-07-28 has no place for such messages).
    async fn log(&self, params: LoggingMessageNotificationParam) {
        let wanted = tools::severity(params.level);
        for c in self.channels(|_| true) {
            if let Channel::Session { peer, level } = c
                && wanted >= tools::severity(*lock(&level))
            {
                let _ = peer.notify_logging_message(params.clone()).await;
            }
        }
    }

    async fn resource_updated(&self, uri: &str) {
        let params = ResourceUpdatedNotificationParam::new(uri);
        for c in self.channels(|l| l.subscriptions.contains(uri)) {
            match c {
                Channel::Session { peer, .. } => {
                    let _ = peer.notify_resource_updated(params.clone()).await;
                }
                Channel::Listen(sink) => {
                    let update = ResourceUpdatedNotification::new(params.clone());
                    let _ = sink
                        .send(ServerNotification::ResourceUpdatedNotification(update))
                        .await;
                }
            }
        }
    }

    /// Records a (un)subscription; `true` when another client still holds
    /// one to `uri` (so the downstream subscription stays).
    pub(super) fn subscribe(&self, id: u64, uri: &str, on: bool) -> bool {
        let mut all = self.lock();
        for l in all.iter_mut().filter(|l| l.id == id) {
            if on {
                l.subscriptions.insert(uri.to_string());
            } else {
                l.subscriptions.remove(uri);
            }
        }
        all.iter()
            .any(|l| l.id != id && l.subscriptions.contains(uri))
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a client's lists are made of, to tell which one changed.
#[derive(PartialEq, Eq, Default)]
struct Lists {
    tools: Vec<String>,
    prompts: Vec<String>,
    resources: BTreeSet<String>,
    /// A downstream's own `list_changed` counts even when the names stay.
    generations: [u64; 3],
}

impl Lists {
    /// The lists that differ between `self` and `now`.
    fn differences(&self, now: &Lists) -> Vec<List> {
        [
            (List::Tools, self.tools != now.tools, 0),
            (List::Prompts, self.prompts != now.prompts, 1),
            (List::Resources, self.resources != now.resources, 2),
        ]
        .into_iter()
        .filter(|(_, names, i)| *names || self.generations[*i] != now.generations[*i])
        .map(|(list, _, _)| list)
        .collect()
    }

    fn of(s: &tools::Snapshot) -> Self {
        Self {
            tools: s.listed().map(|t| t.wire.clone()).collect(),
            prompts: s
                .own_prompts
                .iter()
                .cloned()
                .chain(s.prompts.iter().map(|p| p.wire.clone()))
                .collect(),
            resources: s
                .resources
                .iter()
                .map(|r| r.uri.clone())
                .chain(s.templates.iter().map(|t| t.uri_template.clone()))
                .collect(),
            generations: s.generations,
        }
    }
}

/// Follows the downstream registry: sends `list_changed` when a list
/// changes, resource updates to the sessions subscribed, and log messages
/// sent outside of any call to every session. Ends with the daemon.
pub(super) fn follow(
    registry: ToolRegistry,
    clients: Clients,
    shutdown: tokio_util::sync::CancellationToken,
) {
    tokio::spawn(async move {
        let mut rx = registry.watch();
        let mut events = registry.events();
        let mut last = Lists::of(&registry.snapshot());
        loop {
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() { return }
                    // Clone out of the channel before awaiting anything.
                    let now = Lists::of(&Arc::clone(&rx.borrow_and_update()));
                    for list in last.differences(&now) {
                        clients.changed(list).await;
                    }
                    last = now;
                }
                event = events.recv() => match event {
                    Ok(Event::ResourceUpdated { server, uri }) => {
                        let exposed = registry.snapshot().exposed_uri(&server, &uri);
                        clients.resource_updated(&exposed).await;
                    }
                    Ok(Event::Log { server, mut params }) => {
                        params.logger.get_or_insert(server);
                        clients.log(params).await;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "MCP clients missed downstream notifications");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                () = shutdown.cancelled() => return,
            }
        }
    });
}
