//! Tables for `warren admin`: one row per object, the chosen (dotted) fields as columns, each
//! as wide as its widest cell (cut at a bound so a long payload does not wreck the table).

use super::Kind;
use serde_json::Value;

/// Widest a cell is shown.
const MAX_CELL: usize = 60;

/// The columns a list shows unless `--columns` says otherwise.
pub fn default_columns(kind: Kind) -> &'static str {
    match kind {
        Kind::Queues => {
            "vhost,name,messages_ready,messages_unacknowledged,consumers,policy,message_stats.publish_details.rate"
        }
        Kind::Exchanges => "vhost,name,type,durable,auto_delete,policy",
        Kind::Bindings => "vhost,source,destination,destination_type,routing_key,properties_key",
        Kind::Connections => "name,user,vhost,channels,recv_oct,send_oct",
        Kind::Channels => "name,user,vhost,consumer_count,messages_unacknowledged,prefetch_count",
        Kind::Consumers => "queue.name,consumer_tag,ack_required,prefetch_count,channel_details.name",
        Kind::Vhosts => "name,messages,messages_ready,messages_unacknowledged",
        Kind::Users => "name,tags",
        Kind::Permissions => "vhost,user,configure,write,read",
        Kind::Policies | Kind::OperatorPolicies => "vhost,name,pattern,apply-to,priority,definition",
    }
}

fn field<'a>(item: &'a Value, dotted: &str) -> &'a Value {
    dotted.split('.').fold(item, |v, key| &v[key])
}

fn cell(v: &Value) -> String {
    let text = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let text = text.replace(['\n', '\t'], " ");
    if text.chars().count() > MAX_CELL {
        format!("{}…", text.chars().take(MAX_CELL - 1).collect::<String>())
    } else {
        text
    }
}

/// `value` as a table: a list gives one row per item; an object gives `key  value` rows.
pub fn render(value: &Value, columns: Option<&str>) -> String {
    let rows: Vec<Vec<String>>;
    let header: Vec<String>;
    match value {
        Value::Array(items) => {
            header = match columns {
                Some(c) => c.split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect(),
                None => {
                    items.first().and_then(Value::as_object).map(|o| o.keys().cloned().collect()).unwrap_or_default()
                }
            };
            rows = items.iter().map(|item| header.iter().map(|c| cell(field(item, c))).collect()).collect();
        }
        Value::Object(map) => {
            header = vec!["key".into(), "value".into()];
            rows = map.iter().map(|(k, v)| vec![k.clone(), cell(v)]).collect();
        }
        other => return format!("{}\n", cell(other)),
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(&header);
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_become_aligned_rows_of_the_chosen_fields() {
        let listed = json!([{"name": "a", "messages": 1, "stats": {"rate": 2.5}}, {"name": "longer", "messages": 10}]);
        assert_eq!(
            render(&listed, Some("name,messages,stats.rate")),
            "name    messages  stats.rate\na       1         2.5\nlonger  10\n"
        );
        assert_eq!(render(&json!({"moved": 3}), None), "key    value\nmoved  3\n");
    }
}
