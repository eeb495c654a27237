//! Grants: per-call, scoped access to woollama's own `/mcp` for a delegate
//! (the `claude` CLI running a recipe that has tools, DESIGN decision 9).
//!
//! A delegate must see exactly the tools a recipe allows, no more: not the
//! other tools of the same servers, not woollama's `chat` tool (which would
//! reach every recipe), not prompts or resources. So the recipe loop takes
//! a [`Grant`] — a random bearer token naming the allowed wire names — and
//! points the delegate at woollama's `/mcp` with it. The HTTP surface's auth
//! admits a live grant's token on `/mcp` (even when `WOOLLAMA_TOKEN` is
//! set) and attaches its [`Scope`] to the request; the MCP surface then
//! lists and calls only what the scope permits. The grant ends when the
//! call does (the token is dropped from the table), so a token that leaks
//! afterwards opens nothing.
//!
//! The endpoint is where this process's `/mcp` listens on loopback; it is
//! set once the TCP listener is bound (`serve`). `woollama mcp` on stdio has
//! no listener of its own, so when a recipe delegates it binds one on
//! loopback that serves `/mcp` to grants only (`serve::delegates_only`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::config::Secret;

/// What a granted request may reach: these wire names, nothing else.
#[derive(Debug)]
pub struct Scope {
    tools: HashSet<String>,
}

impl Scope {
    /// Whether the tool with this wire name is granted.
    pub fn permits(&self, wire: &str) -> bool {
        self.tools.contains(wire)
    }
}

/// The live grants of this process, and where its `/mcp` listens.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    live: Arc<Mutex<HashMap<String, Arc<Scope>>>>,
    endpoint: Arc<OnceLock<String>>,
}

impl Grants {
    /// Records where `/mcp` listens (the first call wins).
    pub fn set_endpoint(&self, url: String) {
        let _ = self.endpoint.set(url);
    }

    /// The `/mcp` URL a delegate connects to, if this process listens.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.get().map(String::as_str)
    }

    /// Grants `tools` (wire names) until the returned [`Grant`] is dropped.
    pub fn grant(&self, tools: impl IntoIterator<Item = String>) -> Grant {
        let token = format!(
            "wg_{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let scope = Arc::new(Scope {
            tools: tools.into_iter().collect(),
        });
        self.lock().insert(token.clone(), scope);
        Grant {
            grants: self.clone(),
            token: Secret::new(token),
        }
    }

    /// The scope a bearer token grants, if it is a live grant's.
    pub fn scope(&self, token: &str) -> Option<Arc<Scope>> {
        self.lock().get(token).cloned()
    }

    /// How many grants are live.
    pub fn live(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Scope>>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A live grant; dropping it revokes the token.
#[derive(Debug)]
pub struct Grant {
    grants: Grants,
    token: Secret,
}

impl Grant {
    pub fn token(&self) -> &Secret {
        &self.token
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        self.grants.lock().remove(self.token.expose());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_scopes_its_token_and_ends_with_it() {
        let g = Grants::default();
        let grant = g.grant(["mcp__hello__count_to".to_string()]);
        let token = grant.token().expose().to_string();
        let scope = g.scope(&token).expect("live");
        assert!(scope.permits("mcp__hello__count_to"));
        assert!(!scope.permits("mcp__hello__other"));
        assert!(g.scope("wg_guess").is_none());
        drop(grant);
        assert!(g.scope(&token).is_none());
    }
}
