//! Wire names: what a model (and an MCP client of the aggregator) sees for a
//! downstream tool.
//!
//! Recipes and `/v1/tools` say `server.tool`; dots are not allowed in OpenAI
//! function names (`[A-Za-z0-9_-]{1,64}`), so toward a model the name is
//! `mcp__<server>__<tool>`. Past 64 bytes — or with a character a strict
//! provider refuses, which MCP allows in tool names (`.`, `/`, non-ASCII) —
//! it becomes `mcp__` + 16 lowercase hex digits of FNV-1a-64 over the full
//! `mcp__<server>__<tool>` string, pinned by a test vector so names never
//! change between versions. Dispatch resolves wire names through an index,
//! never by splitting them.

/// The longest function name OpenAI-compatible providers accept.
pub const MAX_WIRE_LEN: usize = 64;

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Whether a strict provider takes `name` as a function name
/// (`[A-Za-z0-9_-]{1,64}`).
pub fn is_wire_safe(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_WIRE_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The wire name of `tool` on `server`.
pub fn wire_name(server: &str, tool: &str) -> String {
    let full = format!("mcp__{server}__{tool}");
    if is_wire_safe(&full) {
        full
    } else {
        hashed(&full)
    }
}

/// The exposed name of a prompt: prompts never reach a model as function
/// names, so only the length rule applies (`files.read` stays readable).
pub fn prompt_name(server: &str, prompt: &str) -> String {
    let full = format!("mcp__{server}__{prompt}");
    if full.len() <= MAX_WIRE_LEN {
        full
    } else {
        hashed(&full)
    }
}

fn hashed(full: &str) -> String {
    format!("mcp__{:016x}", fnv1a64(full.as_bytes()))
}

/// How many times a tool name already went through an aggregator
/// (occurrences of `mcp__`), for the federation nesting cap.
pub fn nesting(tool: &str) -> usize {
    tool.matches("mcp__").count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_readable() {
        assert_eq!(wire_name("hello", "count_to"), "mcp__hello__count_to");
    }

    #[test]
    fn the_pinned_fallback_vector() {
        assert_eq!(
            wire_name(&"s".repeat(50), &"t".repeat(50)),
            "mcp__c251c716388ed55d"
        );
        // Exactly 64 bytes is still readable.
        let server = "a".repeat(64 - "mcp____".len() - 1);
        assert_eq!(wire_name(&server, "b").len(), 64);
        assert!(wire_name(&server, "b").ends_with("__b"));
        assert_eq!(wire_name(&server, "bc").len(), 21);
    }

    #[test]
    fn a_name_a_provider_refuses_is_hashed() {
        // MCP allows `.` (and more) in tool names; OpenAI and Anthropic do not.
        assert_eq!(wire_name("fs", "files.read"), "mcp__05cf967036e890ff");
        assert_eq!(wire_name("fs", "résumé").len(), 21);
        assert_eq!(wire_name("fs", "files_read"), "mcp__fs__files_read");
        // A prompt is never a function name: only the length rule.
        assert_eq!(prompt_name("fs", "files.read"), "mcp__fs__files.read");
    }

    #[test]
    fn nesting_counts_aggregator_prefixes() {
        assert_eq!(nesting("count_to"), 0);
        assert_eq!(nesting("mcp__leaf__count_to"), 1);
        assert_eq!(nesting("mcp__a__mcp__b__t"), 2);
    }
}
