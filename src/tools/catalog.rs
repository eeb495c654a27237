//! The aggregated namespace: every downstream's tools, prompts, resources and
//! resource templates under the names woollama exposes, built once per change
//! into an immutable [`Snapshot`].
//!
//! Naming, so that two servers never collide:
//! - tools and prompts are `mcp__<server>__<name>` (see [`super::names`]);
//! - resources and templates are `woollama://<server>/<original URI>`, which
//!   keeps the original readable and maps back by stripping the prefix.
//!
//! A server with `"prefix": false` keeps its own names and URIs. Collisions
//! are then resolved deterministically: woollama's own names (the `chat`
//! tool, the recipes' prompts) and every prefixed name come first; among
//! unprefixed servers the first by name wins; a loser keeps its prefixed name,
//! so nothing becomes unreachable. Each collision is recorded in
//! [`Snapshot::collisions`] and logged when it appears.

use std::collections::{HashMap, HashSet};

use rmcp::model::{Prompt, Resource, ResourceTemplate, ServerCapabilities, Tool};

use super::{Health, names, wire_name};

/// The scheme and authority of a prefixed resource URI.
pub const URI_PREFIX: &str = "woollama://";

/// `woollama://<server>/<uri>`.
pub fn prefixed_uri(server: &str, uri: &str) -> String {
    format!("{URI_PREFIX}{server}/{uri}")
}

/// The inverse of [`prefixed_uri`]: `(server, original)`.
pub fn split_prefixed_uri(uri: &str) -> Option<(&str, &str)> {
    uri.strip_prefix(URI_PREFIX)?.split_once('/')
}

/// Names woollama's own surface uses; an unprefixed downstream never takes them.
#[derive(Debug, Clone, Default)]
pub struct Reserved {
    pub tools: Vec<String>,
    pub prompts: Vec<String>,
}

/// The MCP surface's own tool, which runs a recipe.
pub const CHAT_TOOL: &str = "chat";

impl Reserved {
    /// woollama's own names on its MCP surface: the `chat` tool and one
    /// prompt per recipe.
    pub fn of(config: &crate::config::Config) -> Self {
        Self {
            tools: vec![CHAT_TOOL.to_string()],
            prompts: config.recipes.keys().cloned().collect(),
        }
    }
}

/// What one server offers (empty while it is down).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub tools: Vec<Tool>,
    pub prompts: Vec<Prompt>,
    pub resources: Vec<Resource>,
    pub templates: Vec<ResourceTemplate>,
    /// The server's capabilities from its handshake.
    pub capabilities: Option<ServerCapabilities>,
    /// What the server tells its clients about itself (`instructions`).
    pub instructions: Option<String>,
    /// How many times the server said its tools, prompts and resources
    /// changed: clients are told of such a change even when the names stay
    /// the same (a definition may have changed).
    pub generations: [u64; 3],
}

/// One configured server as the snapshot sees it.
#[derive(Debug, Clone)]
pub struct ServerStatus {
    pub name: String,
    /// `stdio` or `http`.
    pub transport: &'static str,
    pub health: Health,
    /// Tools listed (those past the nesting cap are not counted).
    pub tools: usize,
    /// Exposed under its own names (`"prefix": false`).
    pub unprefixed: bool,
    /// What the server said it can do; `None` while it is down.
    pub capabilities: Option<ServerCapabilities>,
    /// The protocol version woollama speaks with it; `None` while it is
    /// down.
    pub protocol: Option<String>,
    /// Its `instructions`, while it is connected.
    pub instructions: Option<String>,
}

/// One server's part of a snapshot.
pub struct Part {
    pub status: ServerStatus,
    pub catalog: Catalog,
}

/// One downstream tool.
#[derive(Debug, Clone)]
pub struct ToolEntry {
    pub server: String,
    /// The name toward models and MCP clients.
    pub wire: String,
    /// The downstream's own definition: name, description, schemas.
    pub tool: Tool,
    /// Past the nesting cap: not listed, but still dispatchable.
    pub capped: bool,
}

impl ToolEntry {
    /// `server.tool`.
    pub fn dotted(&self) -> String {
        format!("{}.{}", self.server, self.tool.name)
    }
}

/// One downstream prompt.
#[derive(Debug, Clone)]
pub struct PromptEntry {
    pub server: String,
    pub wire: String,
    pub prompt: Prompt,
}

/// One downstream resource.
#[derive(Debug, Clone)]
pub struct ResourceEntry {
    pub server: String,
    /// The URI clients see.
    pub uri: String,
    pub resource: Resource,
}

/// One downstream resource template.
#[derive(Debug, Clone)]
pub struct TemplateEntry {
    pub server: String,
    /// The URI template clients see.
    pub uri_template: String,
    pub template: ResourceTemplate,
}

/// Everything a request needs to know about the downstreams, immutable.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: u64,
    /// woollama's own prompts (the recipes), which the MCP surface lists
    /// before the downstreams': kept here so that a change to them is a
    /// change of the lists clients are told of.
    pub own_prompts: Vec<String>,
    /// Every configured server, sorted by name — down ones included.
    pub servers: Vec<ServerStatus>,
    /// Every tool, sorted by (server, tool).
    pub tools: Vec<ToolEntry>,
    /// Every prompt, sorted by (server, prompt).
    pub prompts: Vec<PromptEntry>,
    /// Every resource, sorted by (server, URI).
    pub resources: Vec<ResourceEntry>,
    /// Every resource template, sorted by (server, template).
    pub templates: Vec<TemplateEntry>,
    /// How name collisions between unprefixed servers were resolved.
    pub collisions: Vec<String>,
    /// The servers' list-change counts (tools, prompts, resources), summed.
    pub generations: [u64; 3],
    by_wire: HashMap<String, usize>,
    by_ref: HashMap<(String, String), usize>,
    by_prompt: HashMap<String, usize>,
    by_uri: HashMap<String, usize>,
}

/// Hands out exposed names: the unprefixed name when it is free, else the
/// prefixed one, recording why.
struct Namer<'a> {
    taken: HashSet<String>,
    kind: &'static str,
    owners: HashMap<String, &'a str>,
    collisions: &'a mut Vec<String>,
}

impl<'a> Namer<'a> {
    fn new(
        kind: &'static str,
        reserved: &[String],
        prefixed: impl Iterator<Item = String>,
        collisions: &'a mut Vec<String>,
    ) -> Self {
        let mut owners = HashMap::new();
        for r in reserved {
            owners.insert(r.clone(), "woollama");
        }
        let taken = reserved.iter().cloned().chain(prefixed).collect();
        Self {
            taken,
            kind,
            owners,
            collisions,
        }
    }

    fn name(&mut self, server: &'a str, own: &str, prefixed: String) -> String {
        if self.taken.insert(own.to_string()) {
            self.owners.insert(own.to_string(), server);
            return own.to_string();
        }
        let holder = self.owners.get(own).copied().unwrap_or("a prefixed name");
        self.collisions.push(format!(
            "{} '{own}' of server '{server}' collides with {}; exposed as '{prefixed}'",
            self.kind,
            if holder == "a prefixed name" || holder == "woollama" {
                holder.to_string()
            } else {
                format!("server '{holder}'")
            }
        ));
        prefixed
    }
}

/// One kind of item in the aggregated namespace.
struct Kind<'r> {
    /// How collisions name it ("tool", "resource template", …).
    what: &'static str,
    /// Names woollama's own surface takes.
    reserved: &'r [String],
    /// The prefixed (always unique) name of an item of a server.
    prefixed: fn(&str, &str) -> String,
    /// Whether an unprefixed server's own name can be exposed as it is (a
    /// tool's must be a valid function name for strict providers).
    own_ok: fn(&str) -> bool,
}

/// Exposes one kind of item of every server (`parts` sorted by server name;
/// items in name order): a prefixed name, or an unprefixed server's own name
/// when it is free. The prefixed names are everybody's fallback, so they are
/// taken first; then own names go first come, first served.
fn expose<T, E>(
    parts: &[Part],
    kind: Kind<'_>,
    items: impl Fn(&Catalog) -> &Vec<T>,
    own: impl Fn(&T) -> &str,
    collisions: &mut Vec<String>,
    entry: impl Fn(&str, String, &T) -> E,
) -> Vec<E> {
    let all_prefixed = parts.iter().flat_map(|p| {
        items(&p.catalog)
            .iter()
            .map(|x| (kind.prefixed)(&p.status.name, own(x)))
            .collect::<Vec<_>>()
    });
    let mut namer = Namer::new(kind.what, kind.reserved, all_prefixed, collisions);
    let mut out = Vec::new();
    for p in parts {
        let server = p.status.name.as_str();
        let mut list: Vec<&T> = items(&p.catalog).iter().collect();
        list.sort_by(|a, b| own(a).cmp(own(b)));
        for item in list {
            let prefixed = (kind.prefixed)(server, own(item));
            let name = if p.status.unprefixed && (kind.own_ok)(own(item)) {
                namer.name(server, own(item), prefixed)
            } else {
                prefixed
            };
            out.push(entry(server, name, item));
        }
    }
    out
}

impl Snapshot {
    pub(super) fn build(
        version: u64,
        mut parts: Vec<Part>,
        max_nesting: u32,
        reserved: &Reserved,
    ) -> Self {
        parts.sort_by(|a, b| a.status.name.cmp(&b.status.name));
        let mut collisions = Vec::new();
        let mut generations = [0u64; 3];
        for p in &parts {
            for (sum, g) in generations.iter_mut().zip(p.catalog.generations) {
                *sum = sum.wrapping_add(g);
            }
        }

        let tools = expose(
            &parts,
            Kind {
                what: "tool",
                reserved: &reserved.tools,
                prefixed: wire_name,
                own_ok: names::is_wire_safe,
            },
            |c| &c.tools,
            |t| &t.name,
            &mut collisions,
            |server, wire, tool| ToolEntry {
                server: server.to_string(),
                wire,
                tool: tool.clone(),
                capped: max_nesting > 0 && names::nesting(&tool.name) + 1 > max_nesting as usize,
            },
        );
        let prompts = expose(
            &parts,
            Kind {
                what: "prompt",
                reserved: &reserved.prompts,
                prefixed: names::prompt_name,
                own_ok: |_| true,
            },
            |c| &c.prompts,
            |p| &p.name,
            &mut collisions,
            |server, wire, prompt| PromptEntry {
                server: server.to_string(),
                wire,
                prompt: prompt.clone(),
            },
        );
        let resources = expose(
            &parts,
            Kind {
                what: "resource",
                reserved: &[],
                prefixed: prefixed_uri,
                own_ok: |_| true,
            },
            |c| &c.resources,
            |r| &r.uri,
            &mut collisions,
            |server, uri, resource| ResourceEntry {
                server: server.to_string(),
                uri,
                resource: resource.clone(),
            },
        );
        let templates = expose(
            &parts,
            Kind {
                what: "resource template",
                reserved: &[],
                prefixed: prefixed_uri,
                own_ok: |_| true,
            },
            |c| &c.templates,
            |t| &t.uri_template,
            &mut collisions,
            |server, uri_template, template| TemplateEntry {
                server: server.to_string(),
                uri_template,
                template: template.clone(),
            },
        );

        let servers = parts
            .into_iter()
            .map(|p| {
                let mut s = p.status;
                s.tools = tools
                    .iter()
                    .filter(|t| t.server == s.name && !t.capped)
                    .count();
                s
            })
            .collect();
        let mut snapshot = Snapshot::indexed(
            version, servers, tools, prompts, resources, templates, collisions,
        );
        snapshot.generations = generations;
        snapshot
    }

    /// The snapshot with its lookup indexes.
    fn indexed(
        version: u64,
        servers: Vec<ServerStatus>,
        tools: Vec<ToolEntry>,
        prompts: Vec<PromptEntry>,
        resources: Vec<ResourceEntry>,
        templates: Vec<TemplateEntry>,
        collisions: Vec<String>,
    ) -> Self {
        let by_wire = index(&tools, |t| t.wire.clone());
        let by_ref = tools
            .iter()
            .enumerate()
            .map(|(i, t)| ((t.server.clone(), t.tool.name.to_string()), i))
            .collect();
        let by_prompt = index(&prompts, |p| p.wire.clone());
        let by_uri = index(&resources, |r| r.uri.clone());
        Snapshot {
            generations: [0; 3],
            own_prompts: Vec::new(),
            version,
            servers,
            tools,
            prompts,
            resources,
            templates,
            collisions,
            by_wire,
            by_ref,
            by_prompt,
            by_uri,
        }
    }

    /// A tool by wire name.
    pub fn tool(&self, wire: &str) -> Option<&ToolEntry> {
        self.by_wire.get(wire).map(|i| &self.tools[*i])
    }

    /// A tool by `server` and tool name.
    pub fn find(&self, server: &str, tool: &str) -> Option<&ToolEntry> {
        self.by_ref
            .get(&(server.to_string(), tool.to_string()))
            .map(|i| &self.tools[*i])
    }

    /// Tools that are listed (not past the nesting cap).
    pub fn listed(&self) -> impl Iterator<Item = &ToolEntry> {
        self.tools.iter().filter(|t| !t.capped)
    }

    pub fn server(&self, name: &str) -> Option<&ServerStatus> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// A prompt by its exposed name.
    pub fn prompt(&self, wire: &str) -> Option<&PromptEntry> {
        self.by_prompt.get(wire).map(|i| &self.prompts[*i])
    }

    /// A resource template by its exposed URI template.
    pub fn template(&self, exposed: &str) -> Option<&TemplateEntry> {
        self.templates.iter().find(|t| t.uri_template == exposed)
    }

    /// Which server a URI a client sent belongs to, and the URI that server
    /// knows: a listed resource; else a `woollama://<server>/` URI (template
    /// instances, resources not listed); else a URI some server listed as its
    /// own (a client following a link in a tool result); else the first
    /// unprefixed server that serves resources.
    pub fn route_uri(&self, uri: &str) -> Option<(String, String)> {
        if let Some(i) = self.by_uri.get(uri) {
            let r = &self.resources[*i];
            return Some((r.server.clone(), r.resource.uri.clone()));
        }
        if let Some((server, original)) = split_prefixed_uri(uri)
            && self.server(server).is_some()
        {
            return Some((server.to_string(), original.to_string()));
        }
        if let Some(r) = self.resources.iter().find(|r| r.resource.uri == uri) {
            return Some((r.server.clone(), uri.to_string()));
        }
        self.servers
            .iter()
            .find(|s| {
                s.unprefixed
                    && s.capabilities
                        .as_ref()
                        .is_some_and(|c| c.resources.is_some())
            })
            .map(|s| (s.name.clone(), uri.to_string()))
    }

    /// The URI a client sees for `uri` of `server` (the inverse of
    /// [`Snapshot::route_uri`]).
    pub fn exposed_uri(&self, server: &str, uri: &str) -> String {
        if let Some(r) = self
            .resources
            .iter()
            .find(|r| r.server == server && r.resource.uri == uri)
        {
            return r.uri.clone();
        }
        match self.server(server) {
            Some(s) if s.unprefixed => uri.to_string(),
            _ => prefixed_uri(server, uri),
        }
    }
}

fn index<T>(items: &[T], key: impl Fn(&T) -> String) -> HashMap<String, usize> {
    items.iter().enumerate().map(|(i, t)| (key(t), i)).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rmcp::model::JsonObject;

    use super::*;

    fn tool(name: &str) -> Tool {
        Tool::new(name.to_string(), "d", Arc::new(JsonObject::new()))
    }

    fn part(name: &str, unprefixed: bool, tools: &[&str]) -> Part {
        Part {
            status: ServerStatus {
                name: name.into(),
                transport: "http",
                health: Health::Connected,
                tools: 0,
                unprefixed,
                capabilities: Some(ServerCapabilities::builder().enable_resources().build()),
                protocol: None,
                instructions: None,
            },
            catalog: Catalog {
                tools: tools.iter().map(|t| tool(t)).collect(),
                ..Catalog::default()
            },
        }
    }

    fn build(parts: Vec<Part>) -> Snapshot {
        let reserved = Reserved {
            tools: vec!["chat".into()],
            prompts: vec!["streamer".into()],
        };
        Snapshot::build(1, parts, 2, &reserved)
    }

    #[test]
    fn the_nesting_cap_hides_but_keeps_dispatchable() {
        let parts = vec![part(
            "fed",
            false,
            &["chat", "mcp__leaf__count_to", "mcp__a__mcp__b__deep"],
        )];
        let s = build(parts);
        let listed: Vec<&str> = s.listed().map(|t| t.wire.as_str()).collect();
        assert_eq!(
            listed,
            vec!["mcp__fed__chat", "mcp__fed__mcp__leaf__count_to"]
        );
        assert_eq!(s.server("fed").map(|x| x.tools), Some(2));
        // Past the cap: not listed, still in the wire index.
        assert!(
            s.tool("mcp__fed__mcp__a__mcp__b__deep")
                .is_some_and(|t| t.capped)
        );
        // A cap of zero disables it.
        let parts = vec![part("fed", false, &["mcp__a__mcp__b__deep"])];
        let s = Snapshot::build(1, parts, 0, &Reserved::default());
        assert_eq!(s.listed().count(), 1);
    }

    #[test]
    fn servers_and_tools_are_sorted() {
        let s = build(vec![
            part("zeta", false, &["b", "a"]),
            part("alpha", false, &["z"]),
        ]);
        let names: Vec<String> = s.tools.iter().map(ToolEntry::dotted).collect();
        assert_eq!(names, vec!["alpha.z", "zeta.a", "zeta.b"]);
        assert_eq!(s.servers[0].name, "alpha");
        assert_eq!(
            s.find("zeta", "a").map(|t| t.wire.as_str()),
            Some("mcp__zeta__a")
        );
    }

    #[test]
    fn unprefixed_collisions_resolve_by_server_name_and_fall_back_to_the_prefix() {
        let s = build(vec![
            part("zed", true, &["search", "chat", "mcp__alpha__x"]),
            part("beta", true, &["search", "only_beta"]),
            part("alpha", false, &["x"]),
        ]);
        let wires: Vec<(&str, &str)> = s
            .tools
            .iter()
            .map(|t| (t.server.as_str(), t.wire.as_str()))
            .collect();
        assert_eq!(
            wires,
            vec![
                ("alpha", "mcp__alpha__x"),
                ("beta", "only_beta"),
                ("beta", "search"),
                // woollama's own `chat` and a prefixed name win; so does the
                // first server by name.
                ("zed", "mcp__zed__chat"),
                ("zed", "mcp__zed__mcp__alpha__x"),
                ("zed", "mcp__zed__search"),
            ]
        );
        assert_eq!(
            s.collisions,
            vec![
                "tool 'chat' of server 'zed' collides with woollama; exposed as 'mcp__zed__chat'",
                "tool 'mcp__alpha__x' of server 'zed' collides with a prefixed name; exposed as 'mcp__zed__mcp__alpha__x'",
                "tool 'search' of server 'zed' collides with server 'beta'; exposed as 'mcp__zed__search'",
            ]
        );
        assert_eq!(s.tool("search").map(|t| t.server.as_str()), Some("beta"));
    }

    #[test]
    fn an_unprefixed_tool_name_a_provider_refuses_is_exposed_hashed() {
        let s = build(vec![part("fs", true, &["files.read", "stat"])]);
        let wires: Vec<&str> = s.tools.iter().map(|t| t.wire.as_str()).collect();
        assert_eq!(
            wires,
            vec![crate::tools::wire_name("fs", "files.read").as_str(), "stat"]
        );
        assert!(wires[0].starts_with("mcp__") && wires[0].len() == 21);
        assert_eq!(
            s.tool(wires[0]).map(|t| t.tool.name.as_ref()),
            Some("files.read")
        );
    }

    #[test]
    fn resource_uris_are_prefixed_and_route_back() {
        let mut a = part("docs", false, &[]);
        a.catalog.resources = vec![Resource::new("file:///readme.md", "readme")];
        let mut b = part("fx", true, &[]);
        b.catalog.resources = vec![Resource::new("test://static-text", "static")];
        let s = build(vec![a, b]);
        let uris: Vec<&str> = s.resources.iter().map(|r| r.uri.as_str()).collect();
        assert_eq!(
            uris,
            vec!["woollama://docs/file:///readme.md", "test://static-text"]
        );
        let route = |u: &str| s.route_uri(u);
        assert_eq!(
            route("woollama://docs/file:///readme.md"),
            Some(("docs".into(), "file:///readme.md".into()))
        );
        // Not listed, but prefixed: a template instance.
        assert_eq!(
            route("woollama://docs/file:///other.md"),
            Some(("docs".into(), "file:///other.md".into()))
        );
        // A downstream's own URI, as found in a tool result.
        assert_eq!(
            route("file:///readme.md"),
            Some(("docs".into(), "file:///readme.md".into()))
        );
        // Anything else goes to the unprefixed server.
        assert_eq!(
            route("test://template/1/data"),
            Some(("fx".into(), "test://template/1/data".into()))
        );
        assert_eq!(
            s.exposed_uri("docs", "file:///x"),
            "woollama://docs/file:///x"
        );
        assert_eq!(s.exposed_uri("fx", "test://x"), "test://x");
    }
}
