//! Label and field selectors, and the per-request object filter built from them.

use serde_json::Value;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelReq {
    Exists(String),
    NotExists(String),
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// One requirement of a field selector: `path=value` or `path!=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldReq {
    path: String,
    value: String,
    negated: bool,
}

/// Which objects a list or watch request sees: namespace, label selector and field selector.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    namespace: Option<String>,
    labels: Vec<LabelReq>,
    fields: Vec<FieldReq>,
}

impl Filter {
    /// Parses the selectors of a request; the error is a message for a 400 answer.
    pub(crate) fn parse(
        namespace: Option<String>,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<Filter, String> {
        let labels =
            split_terms(label_selector.unwrap_or("")).into_iter().map(parse_label).collect::<Result<_, _>>()?;
        let fields =
            split_terms(field_selector.unwrap_or("")).into_iter().map(parse_field).collect::<Result<_, _>>()?;
        Ok(Filter { namespace, labels, fields })
    }

    /// Whether `obj` passes the namespace and both selectors.
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        let namespace_ok = self.namespace.as_deref().is_none_or(|ns| field(obj, "metadata.namespace") == ns);
        namespace_ok
            && self.labels.iter().all(|r| label_matches(r, obj))
            && self.fields.iter().all(|r| field_matches(r, obj))
    }
}

/// Splits a selector on commas that are not inside parentheses, dropping empty terms.
fn split_terms(selector: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0_i32, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    terms.into_iter().map(str::trim).filter(|t| !t.is_empty()).collect()
}

fn parse_label(term: &str) -> Result<LabelReq, String> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(LabelReq::NotExists(checked_key(key)?));
    }
    if let Some(req) = parse_set_label(term)? {
        return Ok(req);
    }
    if let Some((key, value)) = term.split_once("!=") {
        return Ok(LabelReq::NotEq(checked_key(key)?, value.trim().to_owned()));
    }
    if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(LabelReq::Eq(checked_key(key)?, value.trim().to_owned()));
    }
    Ok(LabelReq::Exists(checked_key(term)?))
}

/// Parses `key in (a,b)` and `key notin (a,b)`; `None` if `term` is not set-based.
fn parse_set_label(term: &str) -> Result<Option<LabelReq>, String> {
    let Some((head, rest)) = term.split_once('(') else { return Ok(None) };
    let Some(values) = rest.trim_end().strip_suffix(')') else {
        return Err(format!("unbalanced parentheses in label selector term {term:?}"));
    };
    let values: Vec<String> = values.split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect();
    let mut words = head.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(key), Some("in"), None) => Ok(Some(LabelReq::In(checked_key(key)?, values))),
        (Some(key), Some("notin"), None) => Ok(Some(LabelReq::NotIn(checked_key(key)?, values))),
        _ => Err(format!("invalid label selector term {term:?}")),
    }
}

fn checked_key(key: &str) -> Result<String, String> {
    let key = key.trim();
    let bad = key.is_empty() || key.contains(|c: char| c.is_whitespace() || "=!(),".contains(c));
    if bad { Err(format!("invalid label key {key:?}")) } else { Ok(key.to_owned()) }
}

fn parse_field(term: &str) -> Result<FieldReq, String> {
    let (path, value, negated) = if let Some((p, v)) = term.split_once("!=") {
        (p, v, true)
    } else if let Some((p, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        (p, v, false)
    } else {
        return Err(format!("invalid field selector term {term:?}: expected path=value or path!=value"));
    };
    let path = path.trim();
    if path.is_empty() {
        return Err(format!("invalid field selector term {term:?}: empty field"));
    }
    Ok(FieldReq { path: path.to_owned(), value: value.trim().to_owned(), negated })
}

fn label(obj: &Value, key: &str) -> Option<String> {
    obj.get("metadata")?.get("labels")?.get(key).map(scalar_string)
}

fn label_matches(req: &LabelReq, obj: &Value) -> bool {
    match req {
        LabelReq::Exists(k) => label(obj, k).is_some(),
        LabelReq::NotExists(k) => label(obj, k).is_none(),
        LabelReq::Eq(k, v) => label(obj, k).as_ref() == Some(v),
        LabelReq::NotEq(k, v) => label(obj, k).as_ref() != Some(v),
        LabelReq::In(k, vs) => label(obj, k).is_some_and(|l| vs.contains(&l)),
        LabelReq::NotIn(k, vs) => label(obj, k).is_none_or(|l| !vs.contains(&l)),
    }
}

/// The value at a dotted path such as `metadata.name`, as a string; empty if absent.
pub(crate) fn field(obj: &Value, path: &str) -> String {
    path.split('.').try_fold(obj, |v, segment| v.get(segment)).map(scalar_string).unwrap_or_default()
}

fn field_matches(req: &FieldReq, obj: &Value) -> bool {
    (field(obj, &req.path) == req.value) != req.negated
}

fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Filter;

    fn svc(ns: &str, name: &str, labels: serde_json::Value) -> serde_json::Value {
        json!({"metadata": {"namespace": ns, "name": name, "labels": labels}, "spec": {"clusterIP": "10.0.0.1"}})
    }

    fn matches(labels: &str, fields: &str, obj: &serde_json::Value) -> bool {
        Filter::parse(None, Some(labels), Some(fields)).map(|f| f.matches(obj)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn label_selectors() {
        let a = svc("ns1", "a", json!({"app": "web", "tier": "front"}));
        let b = svc("ns1", "b", json!({}));
        assert!(matches("", "", &a) && matches("", "", &b));
        assert!(matches("app", "", &a) && !matches("app", "", &b));
        assert!(!matches("!app", "", &a) && matches("!app", "", &b));
        assert!(matches("app=web", "", &a) && matches("app==web", "", &a) && !matches("app=db", "", &a));
        assert!(!matches("app!=web", "", &a) && matches("app!=web", "", &b));
        assert!(matches("app=web, tier=front", "", &a) && !matches("app=web,tier=back", "", &a));
        assert!(matches("app in (db, web),tier", "", &a) && !matches("app notin (web)", "", &a));
        assert!(matches("app notin (web)", "", &b));
    }

    #[test]
    fn field_selectors_and_namespace() {
        let a = svc("ns1", "a", json!({}));
        assert!(matches("", "metadata.name=a", &a) && matches("", "metadata.name==a", &a));
        assert!(!matches("", "metadata.name!=a", &a) && matches("", "metadata.namespace=ns1", &a));
        assert!(matches("", "spec.clusterIP=10.0.0.1,metadata.name=a", &a));
        assert!(!matches("", "metadata.name=b", &a));
        let in_ns2 = Filter::parse(Some("ns2".into()), None, None).map(|f| f.matches(&a));
        assert_eq!(in_ns2, Ok(false));
    }

    #[test]
    fn bad_selectors_are_errors() {
        assert!(Filter::parse(None, Some("a b"), None).is_err());
        assert!(Filter::parse(None, Some("app in (a"), None).is_err());
        assert!(Filter::parse(None, None, Some("metadata.name")).is_err());
    }
}
