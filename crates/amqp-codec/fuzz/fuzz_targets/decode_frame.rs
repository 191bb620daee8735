//! Fuzz target: arbitrary bytes through `decode_frame` (frame_max 131072) must never panic,
//! and every frame that decodes must re-encode canonically (encode -> decode -> encode is stable).
#![no_main]

use amqp_codec::{decode_frame, encode_frame, raw_properties, BasicProperties, Frame};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

const FRAME_MAX: u32 = 131_072;

fn encode(frame: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    encode_frame(&mut out, frame);
    out
}

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = decode_frame(&mut buf, FRAME_MAX) {
        let first = encode(&frame);
        let mut input = first.clone();
        let again = decode_frame(&mut input, FRAME_MAX)
            .expect("re-encoded frame must decode")
            .expect("re-encoded frame must be complete");
        assert!(input.is_empty(), "re-encoded frame left bytes behind");
        assert_eq!(encode(&again), first, "encoding is not canonical");

        if let Frame::Header { properties, .. } = &frame {
            let _ = raw_properties::delivery_mode(properties);
            let _ = raw_properties::priority(properties);
            let _ = raw_properties::expiration(properties);
            let _ = raw_properties::user_id(properties);
            let _ = raw_properties::reply_to(properties);
            let _ = raw_properties::has_headers(properties);
            let well_formed = raw_properties::is_well_formed(properties);
            if let Ok(props) = BasicProperties::decode(properties.clone()) {
                assert!(well_formed, "decodable properties judged malformed");
                let raw = props.to_raw();
                let back =
                    BasicProperties::decode(raw.clone()).expect("re-encoded properties decode");
                assert_eq!(back.to_raw(), raw, "property encoding is not canonical");
                assert_eq!(raw_properties::delivery_mode(&raw), props.delivery_mode);
                assert_eq!(
                    raw_properties::expiration(&raw),
                    props.expiration.as_deref()
                );
            }
        }
    }
});
