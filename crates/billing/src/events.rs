//! A provider event as delivered to the webhook: parsed strictly (a repeated key anywhere is a
//! refusal, not a silent "last one wins"), and reduced to the envelope we route on.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub kind: String,
    /// The provider's time, unix seconds.
    pub created: i64,
    pub livemode: bool,
    pub object: Value,
}

/// The kinds of event that change what PassMe keeps; every other type is recorded and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// `customer.subscription.*`
    Subscription,
    /// `checkout.session.completed` and `.async_payment_succeeded`
    Checkout,
    /// `invoice.*` except `invoice.deleted` and `invoice.upcoming` (a draft's removal, a preview)
    Invoice,
    CustomerDeleted,
}

impl Handled {
    pub fn of(kind: &str) -> Option<Handled> {
        match kind {
            k if k.starts_with("customer.subscription.") => Some(Handled::Subscription),
            "checkout.session.completed" | "checkout.session.async_payment_succeeded" => Some(Handled::Checkout),
            "invoice.deleted" | "invoice.upcoming" => None,
            k if k.starts_with("invoice.") => Some(Handled::Invoice),
            "customer.deleted" => Some(Handled::CustomerDeleted),
            _ => None,
        }
    }
}

/// Accepts any JSON but refuses an object with a repeated key, at any depth.
struct NoDuplicateKeys;

impl<'de> Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoDuplicateKeysVisitor)
    }
}

struct NoDuplicateKeysVisitor;

impl<'de> Visitor<'de> for NoDuplicateKeysVisitor {
    type Value = NoDuplicateKeys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(NoDuplicateKeys)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("the key {key:?} appears twice")));
            }
            map.next_value::<NoDuplicateKeys>()?;
        }
        Ok(NoDuplicateKeys)
    }
}

impl Event {
    pub fn handled(&self) -> Option<Handled> {
        Handled::of(&self.kind)
    }

    /// The event of a handled kind with its object cut down to the fields PassMe reads, or why
    /// it cannot be used. Only this is queued: the provider's objects also carry names, e-mail and
    /// postal addresses, which PassMe has no use for and does not keep, even for the life of a job.
    pub fn minimised(&self, kind: Handled) -> Result<Value, String> {
        use crate::provider::{Invoice, Subscription};
        let object = match kind {
            Handled::Subscription => Subscription::from_object(&self.object).map_err(|e| e.to_string())?.to_object(),
            Handled::Invoice => Invoice::from_object(&self.object).map_err(|e| e.to_string())?.to_object(),
            Handled::Checkout | Handled::CustomerDeleted => {
                let keep = ["id", "object", "mode", "customer", "client_reference_id", "subscription"];
                let mut out = serde_json::Map::new();
                for name in keep {
                    if let Some(value) = self.object.get(name) {
                        let id = value.get("id").cloned().unwrap_or_else(|| value.clone());
                        out.insert(name.to_string(), id);
                    }
                }
                Value::Object(out)
            }
        };
        Ok(serde_json::json!({
            "id": self.id, "type": self.kind, "created": self.created, "livemode": self.livemode, "data": { "object": object },
        }))
    }

    /// Parses a delivered body. The error says what is wrong, for the 400 answer.
    pub fn parse(body: &[u8]) -> Result<Event, String> {
        serde_json::from_slice::<NoDuplicateKeys>(body).map_err(|e| format!("not acceptable JSON: {e}"))?;
        let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
        let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
        let id = text("id").filter(|id| id.starts_with("evt_") && id.len() <= 255).ok_or("no event id (evt_…)")?;
        let kind = text("type").filter(|t| !t.is_empty() && t.len() <= 100).ok_or("no event type")?;
        let created = value.get("created").and_then(Value::as_i64).ok_or("no created time")?;
        let livemode = value.get("livemode").and_then(Value::as_bool).ok_or("no livemode")?;
        let object = value.pointer("/data/object").filter(|o| o.is_object()).cloned().ok_or("no data.object")?;
        Ok(Event { id, kind, created, livemode, object })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_types_that_change_what_we_keep_are_handled() {
        let handled = |k: &str| Handled::of(k);
        assert_eq!(handled("customer.subscription.paused"), Some(Handled::Subscription));
        assert_eq!(handled("checkout.session.completed"), Some(Handled::Checkout));
        assert_eq!(handled("checkout.session.expired"), None);
        assert_eq!(handled("invoice.payment_failed"), Some(Handled::Invoice));
        assert_eq!((handled("invoice.deleted"), handled("invoice.upcoming")), (None, None));
        assert_eq!(handled("customer.deleted"), Some(Handled::CustomerDeleted));
        assert_eq!((handled("customer.updated"), handled("payment_method.attached")), (None, None));
    }

    #[test]
    fn a_well_formed_event_parses() {
        let body = br#"{"id":"evt_1","type":"invoice.paid","created":5,"livemode":false,"data":{"object":{"id":"in_1"}}}"#;
        let event = Event::parse(body).expect("valid");
        assert_eq!((event.id.as_str(), event.kind.as_str(), event.created), ("evt_1", "invoice.paid", 5));
    }

    #[test]
    fn repeated_keys_anywhere_and_missing_parts_are_refused() {
        for body in [
            &br#"{"id":"evt_1","id":"evt_2","type":"x","created":5,"livemode":false,"data":{"object":{}}}"#[..],
            br#"{"id":"evt_1","type":"x","created":5,"livemode":false,"data":{"object":{"status":"active","status":"canceled"}}}"#,
            br#"{"id":"evt_1","type":"x","created":5,"livemode":false,"data":{"object":[{"a":1,"a":2}]}}"#,
            br#"{"id":"1","type":"x","created":5,"livemode":false,"data":{"object":{}}}"#,
            br#"{"id":"evt_1","type":"x","created":"5","livemode":false,"data":{"object":{}}}"#,
            br#"{"id":"evt_1","type":"x","created":5,"data":{"object":{}}}"#,
            br#"{"id":"evt_1","type":"x","created":5,"livemode":false,"data":{}}"#,
            b"not json",
            b"",
        ] {
            assert!(Event::parse(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
