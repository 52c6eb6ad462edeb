//! Annotation templates: text with `{{ $value }}` and `{{ $labels.NAME }}`, nothing
//! else (no functions, no pipelines), so an annotation can never fail to render.

use crate::expr::{ExprError, Name};

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// Literal text.
    Text(String),
    /// `{{ $value }}`: the compared value, printed as the JSONL output prints values.
    Value,
    /// `{{ $labels.NAME }}`: the instance's label (empty when it has none).
    Label(String),
}

/// A parsed annotation template.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template(pub Vec<TemplatePart>);

/// What [`parse`] returns: the template and every `$labels.NAME` with its offset
/// (validation checks the names).
#[derive(Debug)]
pub struct ParsedTemplate {
    pub template: Template,
    pub labels: Vec<Name>,
}

const SUPPORTED: &str = "templates support {{ $value }} and {{ $labels.NAME }} only";

fn error(input: &str, offset: usize, message: String) -> ExprError {
    ExprError {
        offset,
        column: input.get(..offset).map_or(offset, |s| s.chars().count()) + 1,
        message,
        hint: Some(SUPPORTED.to_string()),
    }
}

/// Parses `input`; an unknown `{{ … }}` or an unclosed `{{` is an error at its position.
pub fn parse(input: &str) -> Result<ParsedTemplate, ExprError> {
    let mut parts = Vec::new();
    let mut labels = Vec::new();
    let mut text = String::new();
    let mut pos = 0;
    while let Some(found) = input[pos..].find("{{") {
        let open = pos + found;
        text.push_str(&input[pos..open]);
        let Some(len) = input[open + 2..].find("}}") else {
            return Err(error(input, open, "`{{` is not closed by `}}`".to_string()));
        };
        let inner_start = open + 2;
        let inner = &input[inner_start..inner_start + len];
        let lead = inner.len() - inner.trim_start().len();
        let word = inner.trim();
        let word_offset = inner_start + lead;
        let part = if word == "$value" {
            TemplatePart::Value
        } else if let Some(label) = word.strip_prefix("$labels.") {
            if !crate::validate::is_label_name(label) {
                return Err(error(
                    input,
                    word_offset + "$labels.".len(),
                    format!("`{label}` is not a label name"),
                ));
            }
            labels.push(Name {
                text: label.to_string(),
                offset: word_offset + "$labels.".len(),
            });
            TemplatePart::Label(label.to_string())
        } else {
            return Err(error(
                input,
                word_offset,
                format!("unknown template expression `{word}`"),
            ));
        };
        if !text.is_empty() {
            parts.push(TemplatePart::Text(std::mem::take(&mut text)));
        }
        parts.push(part);
        pos = inner_start + len + 2;
    }
    text.push_str(&input[pos..]);
    if !text.is_empty() {
        parts.push(TemplatePart::Text(text));
    }
    Ok(ParsedTemplate {
        template: Template(parts),
        labels,
    })
}

impl Template {
    /// The text, with `value` (already formatted) and `label(name)` filled in.
    pub fn render<'a>(&self, value: &str, label: impl Fn(&str) -> Option<&'a str>) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                TemplatePart::Text(t) => out.push_str(t),
                TemplatePart::Value => out.push_str(value),
                TemplatePart::Label(name) => out.push_str(label(name).unwrap_or("")),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_labels_are_filled_in() {
        let t = parse("{{ $labels.status }} errors at {{$value}}/min {x}").unwrap();
        assert_eq!(t.labels.len(), 1);
        assert_eq!(t.labels[0].offset, 11);
        let s = t
            .template
            .render("12.5", |n| (n == "status").then_some("503"));
        assert_eq!(s, "503 errors at 12.5/min {x}");
        assert_eq!(parse("").unwrap().template.render("1", |_| None), "");
    }

    #[test]
    fn unknown_syntax_is_an_error_at_its_position() {
        let e = parse("at {{ .Value }}").unwrap_err();
        assert_eq!(e.offset, 6);
        assert!(e.message.contains("unknown template expression `.Value`"));
        let e = parse("x {{ $value").unwrap_err();
        assert_eq!(e.offset, 2);
        let e = parse("{{ $labels.a-b }}").unwrap_err();
        assert_eq!(e.offset, 11);
        let e = parse("{{ $value | humanize }}").unwrap_err();
        assert!(e.message.contains("`$value | humanize`"), "{}", e.message);
    }
}
