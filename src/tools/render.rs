//! A tool result as the text a model reads (contract §5): the text blocks
//! joined with newlines; if there are none, the structured content as JSON;
//! `[tool error] ` in front when the tool reported an error.

use rmcp::model::{CallToolResult, ContentBlock};

pub fn render(result: &CallToolResult) -> String {
    let texts: Vec<&str> = result
        .content
        .iter()
        .filter_map(ContentBlock::as_text)
        .map(|t| t.text.as_str())
        .collect();
    let body = if !texts.is_empty() {
        texts.join("\n")
    } else if let Some(s) = &result.structured_content {
        s.to_string()
    } else if result.content.is_empty() {
        String::new()
    } else {
        // Only images, audio or resources: say so rather than send nothing.
        format!("[{} non-text content block(s)]", result.content.len())
    };
    if result.is_error == Some(true) {
        format!("[tool error] {body}")
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn texts_structured_and_errors() {
        let r = CallToolResult::success(vec![ContentBlock::text("a"), ContentBlock::text("b")]);
        assert_eq!(render(&r), "a\nb");
        let mut r = CallToolResult::success(vec![]);
        r.structured_content = Some(json!({"count": 3}));
        assert_eq!(render(&r), r#"{"count":3}"#);
        let r = CallToolResult::error(vec![ContentBlock::text("boom")]);
        assert_eq!(render(&r), "[tool error] boom");
    }
}
