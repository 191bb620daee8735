//! Lists as RabbitMQ's API serves them: `?sort=` and `?sort_reverse=` by any (dotted) field,
//! `?name=` to filter (`?use_regex=true` for a regular expression), `?page=` and
//! `?page_size=` (at most 500) for a page with its counts, and `?columns=` to keep only some
//! fields of each item.

use crate::error::{MgmtError, Result};
use axum::Json;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::cmp::Ordering;

const MAX_PAGE_SIZE: u64 = 500;
const DEFAULT_PAGE_SIZE: u64 = 100;
/// Longest `?name=` regular expression accepted (the compiled size is bounded by the crate).
const MAX_PATTERN_LEN: usize = 1000;
/// Longest `?sort=` and `?name=`, and `?columns=`, accepted.
const MAX_FIELD_LEN: usize = 200;
const MAX_COLUMNS_LEN: usize = 1000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    page: Option<u64>,
    page_size: Option<u64>,
    name: Option<String>,
    use_regex: Option<bool>,
    sort: Option<String>,
    sort_reverse: Option<bool>,
    columns: Option<String>,
    /// RabbitMQ's statistics options (its web UI and scripts send them). Warren's lists carry
    /// no sampled statistics yet, so they are accepted and change nothing.
    #[allow(dead_code)]
    lengths_age: Option<u64>,
    #[allow(dead_code)]
    lengths_incr: Option<u64>,
    #[allow(dead_code)]
    msg_rates_age: Option<u64>,
    #[allow(dead_code)]
    msg_rates_incr: Option<u64>,
    #[allow(dead_code)]
    data_rates_age: Option<u64>,
    #[allow(dead_code)]
    data_rates_incr: Option<u64>,
    #[allow(dead_code)]
    disable_stats: Option<bool>,
    #[allow(dead_code)]
    enable_queue_totals: Option<bool>,
}

/// The value at a dotted path (`message_stats.publish`).
fn at<'a>(item: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(item, |v, key| v.get(key))
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(Ordering::Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (x, y) => x.map(Value::to_string).cmp(&y.map(Value::to_string)),
    }
}

/// Keeps only the dotted `columns` of `item`.
fn project(item: &Value, columns: &[&str]) -> Value {
    let mut out = Map::new();
    for column in columns {
        let Some(value) = at(item, column) else { continue };
        let mut parts = column.split('.').peekable();
        let mut node = &mut out;
        while let Some(key) = parts.next() {
            if parts.peek().is_none() {
                node.insert(key.to_owned(), value.clone());
                break;
            }
            let child = node.entry(key.to_owned()).or_insert_with(|| Value::Object(Map::new()));
            match child {
                Value::Object(map) => node = map,
                _ => break,
            }
        }
    }
    Value::Object(out)
}

/// Where the page served starts and how many items it holds (`None`: no `?page=`, the whole list).
type PageBounds = Option<(usize, usize)>;

impl ListQuery {
    /// The list (or the page) of `items`, each a JSON object with a `name` field.
    pub fn respond(&self, items: Vec<Value>) -> Result<Json<Value>> {
        let name_of = |item: &Value| item.get("name").and_then(Value::as_str).unwrap_or("").to_owned();
        self.respond_with(items, |i| name_of(i), |i, field| at(i, field).cloned(), |i| i)
    }

    /// The list (or the page) of objects whose JSON is costly to make: the name filter and the
    /// sort run on the objects themselves (`sort_key` gives the value of a field it knows
    /// cheaply, the same value the JSON would hold), and only the items served are made into
    /// JSON. A sort on a field `sort_key` does not know makes every filtered item's JSON first.
    pub fn respond_with<T>(
        &self,
        mut items: Vec<T>,
        name: impl Fn(&T) -> String,
        sort_key: impl Fn(&T, &str) -> Option<Value>,
        json: impl Fn(T) -> Value,
    ) -> Result<Json<Value>> {
        self.check_lengths()?;
        let total = items.len();
        if let Some(matches) = self.name_matcher()? {
            items.retain(|i| matches(&name(i)));
        }
        let sort = self.sort.as_deref().filter(|s| !s.is_empty());
        let reverse = self.sort_reverse == Some(true);
        let known = sort.is_none_or(|field| items.first().is_none_or(|i| sort_key(i, field).is_some()));
        let served: Vec<Value> = if known {
            if let Some(field) = sort {
                let mut keyed: Vec<(Option<Value>, T)> = items.into_iter().map(|i| (sort_key(&i, field), i)).collect();
                keyed.sort_by(|a, b| compare(a.0.as_ref(), b.0.as_ref()));
                items = keyed.into_iter().map(|(_, i)| i).collect();
            }
            if reverse {
                items.reverse();
            }
            let filtered = items.len();
            let bounds = self.page_bounds(filtered)?;
            let (skip, take) = bounds.unwrap_or((0, filtered));
            let page: Vec<Value> = items.into_iter().skip(skip).take(take).map(json).collect();
            return self.answer(page, bounds.is_some(), filtered, total);
        } else {
            items.into_iter().map(json).collect()
        };
        // A field only the JSON has: sort the JSON, as RabbitMQ's API does.
        let mut served = served;
        if let Some(field) = sort {
            served.sort_by(|a, b| compare(at(a, field), at(b, field)));
        }
        if reverse {
            served.reverse();
        }
        let filtered = served.len();
        let bounds = self.page_bounds(filtered)?;
        let (skip, take) = bounds.unwrap_or((0, filtered));
        let page: Vec<Value> = served.into_iter().skip(skip).take(take).collect();
        self.answer(page, bounds.is_some(), filtered, total)
    }

    fn check_lengths(&self) -> Result<()> {
        let too_long = |v: &Option<String>, max: usize| v.as_ref().is_some_and(|s| s.len() > max);
        if too_long(&self.sort, MAX_FIELD_LEN)
            || too_long(&self.name, MAX_FIELD_LEN)
            || too_long(&self.columns, MAX_COLUMNS_LEN)
        {
            return Err(MgmtError::bad_request("sort and name take at most 200 bytes, columns 1000"));
        }
        Ok(())
    }

    /// The `?name=` filter (a substring, or with `?use_regex=true` a regular expression).
    #[allow(clippy::type_complexity)]
    fn name_matcher(&self) -> Result<Option<Box<dyn Fn(&str) -> bool>>> {
        let Some(filter) = self.name.clone().filter(|n| !n.is_empty()) else { return Ok(None) };
        if self.use_regex != Some(true) {
            return Ok(Some(Box::new(move |name: &str| name.contains(filter.as_str()))));
        }
        if filter.len() > MAX_PATTERN_LEN {
            return Err(MgmtError::bad_request("name pattern too long"));
        }
        let re = regex::Regex::new(&filter).map_err(|e| MgmtError::bad_request(format!("bad name pattern: {e}")))?;
        Ok(Some(Box::new(move |name: &str| re.is_match(name))))
    }

    /// The page asked for among `filtered` items, or a 400 for parameters out of bounds.
    fn page_bounds(&self, filtered: usize) -> Result<PageBounds> {
        let page_size = self.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if self.page == Some(0) || page_size == 0 || page_size > MAX_PAGE_SIZE {
            let page = self.page.unwrap_or(1);
            return Err(MgmtError::bad_request(format!(
                "Invalid pagination parameters: page number {page}, page size {page_size}"
            ))
            .named("invalid_pagination_parameters"));
        }
        let Some(page) = self.page else { return Ok(None) };
        let page_count = (filtered as u64).div_ceil(page_size).max(1);
        if page > page_count {
            let reason = format!("Page out of range, page: {page} page size: {page_size}, len: {filtered}");
            return Err(MgmtError::bad_request(reason).named("page_out_of_range"));
        }
        Ok(Some((((page - 1) * page_size) as usize, page_size as usize)))
    }

    /// The items served (kept to `?columns=`), as a list or as a page with its counts.
    fn answer(&self, mut items: Vec<Value>, paged: bool, filtered: usize, total: usize) -> Result<Json<Value>> {
        if let Some(columns) = self.columns.as_deref().filter(|c| !c.is_empty()) {
            let columns: Vec<&str> = columns.split(',').map(str::trim).filter(|c| !c.is_empty()).collect();
            items = items.iter().map(|i| project(i, &columns)).collect();
        }
        if !paged {
            return Ok(Json(Value::Array(items)));
        }
        let page_size = self.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        Ok(Json(serde_json::json!({
            "filtered_count": filtered,
            "item_count": items.len(),
            "items": items,
            "page": self.page,
            "page_count": (filtered as u64).div_ceil(page_size).max(1),
            "page_size": page_size,
            "total_count": total,
        })))
    }
}

/// Warren's own vhost-scoped objects (contracts, transforms) of `vhost`, or of every vhost,
/// that `visible` admits (by vhost), ordered by vhost then name, as JSON.
pub fn in_vhosts<T>(
    items: &[std::sync::Arc<T>],
    vhost: Option<&str>,
    visible: impl Fn(&str) -> bool,
    key: impl Fn(&T) -> (&str, &str),
    json: impl Fn(&T) -> Value,
) -> Vec<Value> {
    let mut chosen: Vec<&T> = items
        .iter()
        .map(|t| &**t)
        .filter(|t| {
            let (v, _) = key(t);
            vhost.is_none_or(|wanted| v == wanted) && visible(v)
        })
        .collect();
    chosen.sort_by(|a, b| key(a).cmp(&key(b)));
    chosen.into_iter().map(json).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn items() -> Vec<Value> {
        (1..=7).map(|i| json!({"name": format!("q{i}"), "messages": 10 - i, "stats": {"rate": i}})).collect()
    }

    #[test]
    fn sorts_filters_pages_and_projects() {
        let q =
            ListQuery { sort: Some("messages".into()), columns: Some("name,stats.rate".into()), ..Default::default() };
        let Json(v) = q.respond(items()).unwrap();
        assert_eq!(v[0], json!({"name": "q7", "stats": {"rate": 7}}));

        let q = ListQuery { page: Some(2), page_size: Some(3), name: Some("q".into()), ..Default::default() };
        let Json(v) = q.respond(items()).unwrap();
        assert_eq!((v["page_count"].as_u64(), v["item_count"].as_u64()), (Some(3), Some(3)));
        assert_eq!(v["items"][0]["name"], "q4");

        let q = ListQuery { name: Some("^q[12]$".into()), use_regex: Some(true), ..Default::default() };
        assert_eq!(q.respond(items()).unwrap().0.as_array().unwrap().len(), 2);

        let q = ListQuery { page: Some(9), ..Default::default() };
        assert_eq!(q.respond(items()).unwrap_err().status, 400);
        let q = ListQuery { page: Some(1), page_size: Some(501), ..Default::default() };
        assert_eq!(q.respond(items()).unwrap_err().status, 400);
    }

    #[test]
    fn lazy_lists_answer_as_json_lists_do_and_make_only_the_page() {
        let objects: Vec<(String, i64)> = (1..=7).map(|i| (format!("q{i}"), (i * 3) % 5)).collect();
        let to_json = |o: &(String, i64)| json!({"name": o.0, "messages": o.1, "stats": {"rate": 10 - o.1}});
        let made = std::cell::Cell::new(0);
        let lazy = |q: &ListQuery| {
            q.respond_with(
                objects.clone(),
                |o| o.0.clone(),
                |o, field| match field {
                    "name" => Some(json!(o.0)),
                    "messages" => Some(json!(o.1)),
                    _ => None,
                },
                |o| {
                    made.set(made.get() + 1);
                    to_json(&o)
                },
            )
        };
        let queries = [
            ListQuery::default(),
            ListQuery { sort: Some("messages".into()), ..Default::default() },
            ListQuery {
                sort: Some("messages".into()),
                sort_reverse: Some(true),
                page: Some(2),
                page_size: Some(3),
                ..Default::default()
            },
            ListQuery { sort: Some("stats.rate".into()), page: Some(1), page_size: Some(2), ..Default::default() },
            ListQuery {
                name: Some("q[3-5]".into()),
                use_regex: Some(true),
                columns: Some("messages".into()),
                ..Default::default()
            },
            ListQuery { name: Some("q1".into()), page: Some(2), ..Default::default() },
            ListQuery { page: Some(1), page_size: Some(0), ..Default::default() },
        ];
        for q in &queries {
            let eager = q.respond(objects.iter().map(to_json).collect());
            match (eager, lazy(q)) {
                (Ok(Json(a)), Ok(Json(b))) => assert_eq!(a, b, "{q:?}"),
                (Err(a), Err(b)) => assert_eq!((a.status, a.error, a.reason), (b.status, b.error, b.reason), "{q:?}"),
                (a, b) => panic!("{q:?}: {:?} against {:?}", a.map(|j| j.0), b.map(|j| j.0)),
            }
        }
        made.set(0);
        let q = ListQuery { sort: Some("messages".into()), page: Some(2), page_size: Some(3), ..Default::default() };
        assert_eq!(lazy(&q).unwrap().0["item_count"], 3);
        assert_eq!(made.get(), 3, "only the page's items are made into JSON");
        made.set(0);
        let q = ListQuery { sort: Some("stats.rate".into()), page: Some(1), page_size: Some(3), ..Default::default() };
        assert_eq!(lazy(&q).unwrap().0["item_count"], 3);
        assert_eq!(made.get(), 7, "a field only the JSON has: every item's JSON, to sort it");
    }
}
