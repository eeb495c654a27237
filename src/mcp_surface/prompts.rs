//! Recipes as MCP prompts (contract §6.4): one prompt per recipe; each
//! distinct `{{var}}` token of its system prompt is an argument (described by
//! the recipe's `variables`, never required); `prompts/get` fills supplied
//! values, then defaults, and returns the rendered system prompt as one
//! `user` message (MCP has no system role).

use std::collections::BTreeMap;

use rmcp::ErrorData;
use rmcp::model::{
    GetPromptRequestParams, GetPromptResult, Prompt, PromptArgument, PromptMessage, Role,
};
use serde_json::{Map, Value};

use crate::config::Recipe;
use crate::config::recipes::system_variables;

fn description(name: &str) -> String {
    format!("woollama recipe '{name}' — its system prompt")
}

pub fn list(recipes: &BTreeMap<String, Recipe>) -> Vec<Prompt> {
    recipes
        .values()
        .map(|r| {
            let vars = system_variables(&r.system);
            let arguments = (!vars.is_empty()).then(|| {
                vars.iter()
                    .map(|v| {
                        let mut a = PromptArgument::new(v.clone());
                        if let Some(d) = r.variables.get(v).and_then(|x| x.description.clone()) {
                            a = a.with_description(d);
                        }
                        a
                    })
                    .collect()
            });
            Prompt::new(r.name.clone(), Some(description(&r.name)), arguments)
        })
        .collect()
}

pub fn get(
    recipes: &BTreeMap<String, Recipe>,
    request: &GetPromptRequestParams,
) -> Result<GetPromptResult, ErrorData> {
    let recipe = recipes.get(&request.name).ok_or_else(|| {
        ErrorData::invalid_params(format!("unknown recipe '{}'", request.name), None)
    })?;
    let supplied: Map<String, Value> = request.arguments.clone().unwrap_or_default();
    let text = recipe.render_system(&supplied);
    Ok(
        GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
            .with_description(description(&recipe.name)),
    )
}

/// Completion values for a recipe prompt's argument: its `choices` and
/// `default`, those that start with what the user typed. `None` when the
/// prompt is not a recipe.
pub fn complete(
    recipes: &BTreeMap<String, Recipe>,
    prompt: &str,
    argument: &str,
    typed: &str,
) -> Option<Vec<String>> {
    let recipe = recipes.get(prompt)?;
    let Some(var) = recipe.variables.get(argument) else {
        return Some(Vec::new());
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut values: Vec<String> = var.choices.iter().map(text).collect();
    if let Some(d) = var.default.as_ref().map(text)
        && !values.contains(&d)
    {
        values.push(d);
    }
    values.retain(|v| v.starts_with(typed));
    values.truncate(100);
    Some(values)
}
