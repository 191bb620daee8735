//! Fuzz target: arbitrary bytes as a content header's property flags + list through `BasicProperties::decode` must never panic; decoded properties re-encode canonically, and the lazy `raw_properties` accessors read the same values from the input bytes as the full decoder.
#![no_main]

use amqp_codec::{raw_properties, BasicProperties};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let well_formed = raw_properties::is_well_formed(data);
    let Ok(props) = BasicProperties::decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    assert!(well_formed, "decodable properties judged malformed");
    assert_eq!(raw_properties::delivery_mode(data), props.delivery_mode);
    assert_eq!(raw_properties::priority(data), props.priority);
    assert_eq!(raw_properties::expiration(data), props.expiration.as_deref());
    assert_eq!(raw_properties::user_id(data), props.user_id.as_deref());
    assert_eq!(raw_properties::reply_to(data), props.reply_to.as_deref());
    assert_eq!(raw_properties::has_headers(data), props.headers.is_some());

    let raw = props.to_raw();
    assert_eq!(raw.len(), props.encoded_len(), "encoded_len disagrees with encode");
    let again = BasicProperties::decode(raw.clone()).expect("re-encoded properties must decode");
    // Header tables may hold NaN floats, which are not equal to themselves: compare their text then.
    if again != props {
        assert_eq!(format!("{again:?}"), format!("{props:?}"), "properties changed through encode/decode");
    }
    assert_eq!(again.to_raw(), raw, "property encoding is not canonical");
    assert!(raw_properties::is_well_formed(&raw));
});
