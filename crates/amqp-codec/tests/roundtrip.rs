//! Property tests: encode -> decode is the identity for methods, tables, properties and frame streams,
//! and no input makes a decoder panic.

mod common;

use amqp_codec::*;
use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;

/// Decodes every complete frame in `buf`.
fn drain(buf: &mut BytesMut, frame_max: u32) -> Result<Vec<Frame>, CodecError> {
    let mut out = Vec::new();
    while let Some(f) = decode_frame(buf, frame_max)? {
        out.push(f);
    }
    Ok(out)
}

fn encode_all(frames: &[Frame]) -> BytesMut {
    let mut buf = BytesMut::new();
    for f in frames {
        encode_frame(&mut buf, f);
    }
    buf
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn method_round_trip(m in common::method()) {
        let mut buf = BytesMut::new();
        m.encode(&mut buf);
        let bytes = buf.freeze();
        let decoded = Method::decode(bytes.clone()).unwrap();
        prop_assert_eq!(&decoded, &m);
        prop_assert_eq!(Method::name_of(m.class_id(), m.method_id()), Some(m.name()));
        // Re-encoding is byte-exact.
        let mut again = BytesMut::new();
        decoded.encode(&mut again);
        prop_assert_eq!(&again[..], &bytes[..]);
    }

    #[test]
    fn method_frame_round_trip(channel in any::<u16>(), m in common::method()) {
        let mut buf = BytesMut::new();
        encode_method(&mut buf, channel, &m);
        let f = decode_frame(&mut buf, 0).unwrap().unwrap();
        prop_assert_eq!(f, Frame::Method { channel, method: m });
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn table_round_trip(t in common::field_table()) {
        let mut buf = BytesMut::new();
        t.encode(&mut buf);
        prop_assert_eq!(buf.len(), t.encoded_len());
        let bytes = buf.freeze();
        let mut input = bytes.clone();
        let decoded = FieldTable::decode(&mut input).unwrap();
        prop_assert!(input.is_empty());
        prop_assert_eq!(&decoded, &t);
        let mut again = BytesMut::new();
        decoded.encode(&mut again);
        prop_assert_eq!(&again[..], &bytes[..]);
    }

    #[test]
    fn properties_round_trip(p in common::properties()) {
        let raw = p.to_raw();
        prop_assert_eq!(raw.len(), p.encoded_len());
        prop_assert_eq!(BasicProperties::decode(raw.clone()).unwrap(), p.clone());
        // The lazy accessors agree with the full decode.
        prop_assert_eq!(raw_properties::delivery_mode(&raw), p.delivery_mode);
        prop_assert_eq!(raw_properties::priority(&raw), p.priority);
        prop_assert_eq!(raw_properties::expiration(&raw), p.expiration.as_deref());
        prop_assert_eq!(raw_properties::user_id(&raw), p.user_id.as_deref());
        prop_assert_eq!(raw_properties::reply_to(&raw), p.reply_to.as_deref());
        prop_assert_eq!(raw_properties::has_headers(&raw), p.headers.is_some());
        prop_assert!(raw_properties::is_well_formed(&raw));
    }

    #[test]
    fn frame_stream_round_trip(frames in vec(common::frame(), 1..8)) {
        let mut buf = encode_all(&frames);
        prop_assert_eq!(drain(&mut buf, 0).unwrap(), frames);
        prop_assert!(buf.is_empty());
    }

    /// Feeding the stream in two chunks, split anywhere, yields the same frames:
    /// `Ok(None)` consumes nothing and decoding resumes when the rest arrives.
    #[test]
    fn any_split_point_gives_same_frames(frames in vec(common::frame(), 1..6), split in any::<prop::sample::Index>()) {
        let whole = encode_all(&frames).freeze();
        let at = split.index(whole.len() + 1);
        let mut buf = BytesMut::from(&whole[..at]);
        let mut got = drain(&mut buf, 131_072).unwrap();
        let pending = buf.len();
        prop_assert_eq!(&buf[..], &whole[at - pending..at]);
        buf.extend_from_slice(&whole[at..]);
        got.extend(drain(&mut buf, 131_072).unwrap());
        prop_assert_eq!(got, frames);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn byte_by_byte_feeding(frames in vec(common::frame(), 1..4)) {
        let whole = encode_all(&frames);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in whole.iter() {
            buf.extend_from_slice(&[*b]);
            got.extend(drain(&mut buf, 0).unwrap());
        }
        prop_assert_eq!(got, frames);
    }

    /// Arbitrary bytes never make the decoder panic, whatever frame_max.
    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..512), frame_max in prop_oneof![Just(0u32), Just(4096), any::<u32>()]) {
        let mut buf = BytesMut::from(&data[..]);
        let _ = drain(&mut buf, frame_max);
    }

    /// Like above, but with a plausible frame header so the payload decoders get exercised.
    #[test]
    fn arbitrary_payloads_never_panic(kind in prop_oneof![Just(1u8), Just(2), Just(3), Just(8)], channel in any::<u16>(), payload in vec(any::<u8>(), 0..256)) {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[kind]);
        buf.extend_from_slice(&channel.to_be_bytes());
        buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        buf.extend_from_slice(&payload);
        buf.extend_from_slice(&[FRAME_END]);
        if let Ok(Some(f)) = decode_frame(&mut buf, 0) {
            let mut out = BytesMut::new();
            encode_frame(&mut out, &f);
            let mut input = out.clone();
            let again = decode_frame(&mut input, 0).unwrap().unwrap();
            let mut out2 = BytesMut::new();
            encode_frame(&mut out2, &again);
            prop_assert_eq!(out2, out);
        }
        let p = Bytes::from(payload);
        let _ = Method::decode(p.clone());
        let _ = BasicProperties::decode(p.clone());
        let _ = FieldTable::decode(&mut p.clone());
        let _ = raw_properties::expiration(&p);
        let _ = raw_properties::delivery_mode(&p);
        let _ = raw_properties::priority(&p);
        let _ = raw_properties::user_id(&p);
        let _ = raw_properties::reply_to(&p);
        let _ = raw_properties::is_well_formed(&p);
    }

    /// Method payloads with a valid class/method prefix and random arguments: no panic,
    /// and a successful decode re-encodes to exactly the input.
    #[test]
    fn random_method_arguments(m in common::method(), args in vec(any::<u8>(), 0..64)) {
        let mut payload = BytesMut::new();
        payload.extend_from_slice(&m.class_id().to_be_bytes());
        payload.extend_from_slice(&m.method_id().to_be_bytes());
        payload.extend_from_slice(&args);
        let payload = payload.freeze();
        if let Ok(decoded) = Method::decode(payload.clone()) {
            // Encoding is canonical: decode(encode(x)) encodes to the same bytes again.
            // (Compared as bytes because a decoded table may hold NaN floats.) The bytes may
            // differ from the input only where input is non-canonical: undefined flag bits,
            // 'L' tags, a non-empty reserved get-empty string.
            let mut out = BytesMut::new();
            decoded.encode(&mut out);
            let out = out.freeze();
            let mut again = BytesMut::new();
            Method::decode(out.clone()).unwrap().encode(&mut again);
            prop_assert_eq!(&again[..], &out[..]);
        }
    }

    /// Flipping bytes of a valid stream never panics.
    #[test]
    fn mutated_streams_never_panic(frames in vec(common::frame(), 1..4), flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut buf = encode_all(&frames);
        let len = buf.len();
        for (i, v) in flips {
            buf[i.index(len)] = v;
        }
        let _ = drain(&mut buf, 131_072);
    }
}

#[test]
fn float_bits_round_trip_including_nan() {
    let nan32 = f32::from_bits(0x7fc0_1234);
    let nan64 = f64::from_bits(0x7ff8_0000_dead_beef);
    let mut t = FieldTable::new();
    t.insert("f", FieldValue::F32(nan32));
    t.insert("d", FieldValue::F64(nan64));
    let mut buf = BytesMut::new();
    t.encode(&mut buf);
    let d = FieldTable::decode(&mut buf.freeze()).unwrap();
    match (d.get("f"), d.get("d")) {
        (Some(FieldValue::F32(f)), Some(FieldValue::F64(g))) => {
            assert_eq!(f.to_bits(), nan32.to_bits());
            assert_eq!(g.to_bits(), nan64.to_bits());
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn method_table_is_consistent() {
    // Every (class, method) pair in the table decodes to a method with the same ids and name.
    let mut seen = std::collections::HashSet::new();
    for class in [10u16, 20, 30, 40, 50, 60, 85, 90] {
        for id in 0..=200u16 {
            if let Some(name) = Method::name_of(class, id) {
                assert!(seen.insert(name), "duplicate {name}");
                assert!(name.contains('.'));
            }
        }
    }
    assert_eq!(seen.len(), common::METHOD_COUNT);
}
