//! Error paths: oversize frames refused from the header alone, bad ends, unknown types and methods,
//! truncation, trailing bytes, bad UTF-8 and hostile nesting.

use amqp_codec::*;
use bytes::{Bytes, BytesMut};

fn decode(bytes: &[u8], frame_max: u32) -> Result<Option<Frame>, CodecError> {
    decode_frame(&mut BytesMut::from(bytes), frame_max)
}

fn method_frame(payload: &[u8]) -> Vec<u8> {
    let mut v = vec![1, 0, 1];
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v.push(FRAME_END);
    v
}

#[test]
fn oversize_frame_refused_before_payload_arrives() {
    // Header only: body frame announcing 131_065 bytes, one more than 131_072 - 8.
    let header = [3, 0, 1, 0x00, 0x01, 0xff, 0xf9];
    let err = decode(&header, 131_072).unwrap_err();
    assert_eq!(err, CodecError::FrameTooLarge { size: 131_065, max: 131_072 });
    assert_eq!(err.reply_code(), reply_code::FRAME_ERROR);
    // Exactly the limit: just waits for more bytes.
    assert_eq!(decode(&[3, 0, 1, 0x00, 0x01, 0xff, 0xf8], 131_072), Ok(None));
    // frame_max 0 = no limit.
    assert_eq!(decode(&[3, 0, 1, 0xff, 0xff, 0xff, 0xff], 0), Ok(None));
    // A tiny frame_max refuses everything but empty payloads.
    assert!(decode(&[3, 0, 1, 0, 0, 0, 1], 8).is_err());
    assert!(matches!(decode(&[3, 0, 1, 0, 0, 0, 1], 4), Err(CodecError::FrameTooLarge { .. })));
}

#[test]
fn incomplete_consumes_nothing() {
    let full = method_frame(&[0, 90, 0, 10]);
    for cut in 0..full.len() {
        let mut buf = BytesMut::from(&full[..cut]);
        assert_eq!(decode_frame(&mut buf, 4096), Ok(None), "cut {cut}");
        assert_eq!(&buf[..], &full[..cut]);
    }
    assert_eq!(decode(&full, 4096), Ok(Some(Frame::Method { channel: 1, method: Method::TxSelect })));
}

#[test]
fn bad_frame_end() {
    let mut f = method_frame(&[0, 90, 0, 10]);
    *f.last_mut().unwrap() = 0xCD;
    assert_eq!(decode(&f, 4096), Err(CodecError::BadFrameEnd(0xCD)));
}

#[test]
fn unknown_frame_type() {
    assert_eq!(decode(&[4, 0, 0, 0, 0, 0, 0], 4096), Err(CodecError::UnknownFrameType(4)));
    // A protocol header arriving where a frame is expected.
    assert_eq!(decode(PROTOCOL_HEADER, 4096), Err(CodecError::UnknownFrameType(b'A')));
    assert_eq!(CodecError::UnknownFrameType(4).reply_code(), 501);
}

#[test]
fn heartbeat_rules() {
    assert_eq!(decode(&[8, 0, 5, 0, 0, 0, 0, 0xCE], 4096), Err(CodecError::HeartbeatOnChannel(5)));
    assert!(matches!(decode(&[8, 0, 0, 0, 0, 0, 1, 0, 0xCE], 4096), Err(CodecError::Malformed(_))));
}

#[test]
fn unknown_method() {
    let err = decode(&method_frame(&[0, 60, 0, 41]), 4096).unwrap_err();
    assert_eq!(err, CodecError::UnknownMethod { class_id: 60, method_id: 41 });
    assert_eq!(err.reply_code(), reply_code::NOT_IMPLEMENTED);
    let err = decode(&method_frame(&[0, 99, 0, 10]), 4096).unwrap_err();
    assert_eq!(err, CodecError::UnknownMethod { class_id: 99, method_id: 10 });
}

#[test]
fn truncated_and_trailing_method_arguments() {
    // basic.publish missing its bit octet.
    // As RabbitMQ: 501 FRAME_ERROR, naming the method.
    let err = decode(&method_frame(&[0, 60, 0, 40, 0, 0, 0, 1, b'k']), 4096).unwrap_err();
    assert!(matches!(err, CodecError::BadArguments { class_id: 60, method_id: 40, .. }), "{err:?}");
    assert_eq!(err.reply_code(), reply_code::FRAME_ERROR);
    assert_eq!(err.method_ids(), (60, 40));
    // A shortstr whose length runs past the payload.
    let err = decode(&method_frame(&[0, 60, 0, 40, 0, 0, 9, b'a']), 4096).unwrap_err();
    assert!(matches!(err, CodecError::BadArguments { class_id: 60, method_id: 40, .. }), "{err:?}");
    // Trailing byte after tx.select.
    let err = decode(&method_frame(&[0, 90, 0, 10, 0]), 4096).unwrap_err();
    assert!(matches!(err, CodecError::BadArguments { class_id: 90, method_id: 10, .. }), "{err:?}");
    // Payload too short for class/method ids.
    assert!(matches!(decode(&method_frame(&[0, 90, 0]), 4096), Err(CodecError::Malformed(_))));
    // Content header shorter than class + weight + body size.
    assert!(matches!(decode(&[2, 0, 1, 0, 0, 0, 4, 0, 60, 0, 0, 0xCE], 4096), Err(CodecError::Malformed(_))));
}

#[test]
fn invalid_utf8_short_string() {
    let err = decode(&method_frame(&[0, 60, 0, 40, 0, 0, 0, 1, 0xff, 0]), 4096).unwrap_err();
    assert!(matches!(err, CodecError::BadArguments { .. }), "{err:?}");
}

#[test]
fn table_length_past_end() {
    // queue.declare whose arguments table claims 100 bytes.
    let err = decode(&method_frame(&[0, 50, 0, 10, 0, 0, 1, b'q', 0, 0, 0, 0, 100]), 4096).unwrap_err();
    assert!(matches!(err, CodecError::BadArguments { .. }), "{err:?}");
}

/// Builds a table with `levels` tables nested inside the top-level one.
fn nested(levels: usize) -> FieldTable {
    let mut t = FieldTable::new();
    for _ in 0..levels {
        let mut outer = FieldTable::new();
        outer.insert("n", FieldValue::Table(t));
        t = outer;
    }
    t
}

#[test]
fn nesting_depth_limit_in_a_method() {
    for (levels, ok) in [(64, true), (65, false)] {
        let m = Method::QueueDeclare(QueueDeclare { arguments: nested(levels), ..Default::default() });
        let mut buf = BytesMut::new();
        encode_method(&mut buf, 1, &m);
        let res = decode_frame(&mut buf, 0);
        assert_eq!(res.is_ok(), ok, "levels {levels}");
        if !ok {
            assert!(matches!(res, Err(CodecError::BadArguments { .. })), "{res:?}");
        }
    }
    // Arrays count too.
    let mut v = FieldValue::Void;
    for _ in 0..65 {
        v = FieldValue::Array(vec![v]);
    }
    let mut t = FieldTable::new();
    t.insert("a", v);
    let mut buf = BytesMut::new();
    t.encode(&mut buf);
    assert!(matches!(FieldTable::decode(&mut buf.freeze()), Err(CodecError::Malformed(_))));
}

#[test]
fn body_splitting() {
    let body = vec![7u8; 10_000];
    let mut buf = BytesMut::new();
    encode_body(&mut buf, 3, &body, 4096);
    let mut sizes = Vec::new();
    while let Some(f) = decode_frame(&mut buf, 4096).unwrap() {
        match f {
            Frame::Body { channel: 3, payload } => sizes.push(payload.len()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(sizes, [4088, 4088, 1824]);

    let mut buf = BytesMut::new();
    encode_body(&mut buf, 3, &[], 4096);
    assert!(buf.is_empty());

    encode_body(&mut buf, 3, &body, 0);
    assert_eq!(buf.len(), body.len() + FRAME_OVERHEAD);
}

#[test]
fn reply_codes_and_display() {
    assert_eq!(CodecError::BadFrameEnd(0).reply_code(), 501);
    assert_eq!(CodecError::HeartbeatOnChannel(1).reply_code(), 505);
    assert_eq!(CodecError::FrameTooLarge { size: 1, max: 1 }.reply_code(), 501);
    assert_eq!(CodecError::Malformed("x").reply_code(), 502);
    assert!(CodecError::UnknownMethod { class_id: 1, method_id: 2 }.to_string().contains("1.2"));
}

#[test]
fn properties_rejects_trailing_bytes() {
    assert!(BasicProperties::decode(Bytes::from_static(&[0, 0, 0])).is_err());
}
