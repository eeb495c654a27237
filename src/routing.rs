//! The `model` field is the address: turning it into a route.
//!
//! - `woollama/<recipe>` runs a recipe;
//! - `<provider>/<model>` passes through to a configured inferencer, with the
//!   bare model (which may itself contain `/`);
//! - `claude-code/<model>` and `claude-agent/<model>` name the subprocess and
//!   hosted backends, usable only where those backends are served;
//! - anything else is an unknown namespace.
//!
//! Pure: no I/O, no axum.

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    Recipe(&'a str),
    Provider { provider: &'a str, model: &'a str },
    ClaudeCode(&'a str),
    ClaudeAgent(&'a str),
    Unknown,
}

/// Splits a model string into its namespace and the rest (`None` without a
/// `/`): the one place that knows the namespace comes before the first `/`.
pub fn split(model: &str) -> Option<(&str, &str)> {
    model.split_once('/')
}

/// Routes `model`; `is_provider` says whether a name is a configured
/// inferencer.
pub fn route<'a>(model: &'a str, is_provider: impl Fn(&str) -> bool) -> Route<'a> {
    let Some((ns, rest)) = split(model) else {
        return Route::Unknown;
    };
    match ns {
        "woollama" => Route::Recipe(rest),
        "claude-code" => Route::ClaudeCode(rest),
        "claude-agent" => Route::ClaudeAgent(rest),
        _ if !rest.is_empty() && is_provider(ns) => Route::Provider {
            provider: ns,
            model: rest,
        },
        _ => Route::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(model: &str) -> Route<'_> {
        route(model, |p| matches!(p, "ollama" | "vllm"))
    }

    #[test]
    fn namespaces() {
        assert_eq!(r("woollama/streamer"), Route::Recipe("streamer"));
        assert_eq!(
            r("ollama/qwen3:14b"),
            Route::Provider {
                provider: "ollama",
                model: "qwen3:14b"
            }
        );
        // The bare model keeps any further slashes.
        assert_eq!(
            r("vllm/Qwen/Qwen3-8B"),
            Route::Provider {
                provider: "vllm",
                model: "Qwen/Qwen3-8B"
            }
        );
        assert_eq!(r("claude-code/haiku"), Route::ClaudeCode("haiku"));
        assert_eq!(r("claude-agent/opus"), Route::ClaudeAgent("opus"));
        assert_eq!(r("gpt-4o"), Route::Unknown);
        assert_eq!(r("mystery/x"), Route::Unknown);
        assert_eq!(r("ollama/"), Route::Unknown);
    }
}
