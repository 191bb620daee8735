//! Hand-written byte vectors: decoding gives the expected value and encoding gives the exact bytes.

use amqp_codec::*;
use bytes::{Bytes, BytesMut};

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Decodes `wire` as one frame (nothing left over) and checks that encoding `expected` writes `wire`.
fn check(wire: &[u8], expected: &Frame) {
    let mut buf = BytesMut::from(wire);
    let got = decode_frame(&mut buf, 131_072).unwrap().unwrap();
    assert_eq!(&got, expected);
    assert!(buf.is_empty());
    let mut out = BytesMut::new();
    encode_frame(&mut out, expected);
    assert_eq!(&out[..], wire);
}

#[test]
fn connection_start() {
    let wire = cat(&[
        &[1, 0, 0, 0, 0, 0, 56],    // method frame, channel 0, size 56
        &[0, 10, 0, 10],            // connection.start
        &[0, 9],                    // version 0-9
        &[0, 0, 0, 19],             // server-properties: 19 bytes
        b"\x07product",             //   key
        b"S\x00\x00\x00\x06Warren", // longstr value
        b"\x00\x00\x00\x0ePLAIN AMQPLAIN",
        b"\x00\x00\x00\x05en_US",
        &[0xCE],
    ]);
    let mut server_properties = FieldTable::new();
    server_properties.insert("product", FieldValue::from("Warren"));
    let expected = Frame::Method {
        channel: 0,
        method: Method::ConnectionStart(ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties,
            mechanisms: Bytes::from_static(b"PLAIN AMQPLAIN"),
            locales: Bytes::from_static(b"en_US"),
        }),
    };
    check(&wire, &expected);
}

#[test]
fn basic_publish() {
    let wire = cat(&[
        &[1, 0, 1, 0, 0, 0, 14],
        &[0, 60, 0, 40], // basic.publish
        &[0, 0],         // ticket
        &[0],            // exchange ""
        b"\x05hello",    // routing key
        &[0b01],         // mandatory
        &[0xCE],
    ]);
    let expected = Frame::Method {
        channel: 1,
        method: Method::BasicPublish(BasicPublish {
            routing_key: "hello".into(),
            mandatory: true,
            ..Default::default()
        }),
    };
    check(&wire, &expected);
    // encode_method writes the same bytes.
    let mut out = BytesMut::new();
    if let Frame::Method { method, .. } = &expected {
        encode_method(&mut out, 1, method);
    }
    assert_eq!(&out[..], &wire[..]);
}

#[test]
fn queue_declare_bits() {
    let wire = cat(&[
        &[1, 0, 2, 0, 0, 0, 13],
        &[0, 50, 0, 10],
        &[0, 0],
        b"\x01q",
        &[0b0001_1010], // durable, auto-delete, nowait
        &[0, 0, 0, 0],  // arguments {}
        &[0xCE],
    ]);
    let expected = Frame::Method {
        channel: 2,
        method: Method::QueueDeclare(QueueDeclare {
            queue: "q".into(),
            durable: true,
            auto_delete: true,
            nowait: true,
            ..Default::default()
        }),
    };
    check(&wire, &expected);
}

#[test]
fn basic_deliver() {
    let wire = cat(&[
        &[1, 0, 3, 0, 0, 0, 24],
        &[0, 60, 0, 60],
        b"\x04ctag",
        &[0, 0, 0, 0, 0, 0, 1, 0], // delivery tag 256
        &[1],                      // redelivered
        b"\x02ex",
        b"\x02rk",
        &[0xCE],
    ]);
    let expected = Frame::Method {
        channel: 3,
        method: Method::BasicDeliver(BasicDeliver {
            consumer_tag: "ctag".into(),
            delivery_tag: 256,
            redelivered: true,
            exchange: "ex".into(),
            routing_key: "rk".into(),
        }),
    };
    check(&wire, &expected);
}

#[test]
fn content_header_with_headers_table() {
    let props_raw = cat(&[
        &[0x30, 0x00], // flags: headers, delivery-mode
        &[0, 0, 0, 9], // table of 9 bytes
        b"\x03x-aI",   //   "x-a" => I
        &[0, 0, 0, 1], //   1
        &[2],          // delivery-mode 2
    ]);
    let wire = cat(&[
        &[2, 0, 1, 0, 0, 0, 28],
        &[0, 60],                  // class basic
        &[0, 0],                   // weight
        &[0, 0, 0, 0, 0, 0, 0, 5], // body size
        &props_raw,
        &[0xCE],
    ]);
    let expected = Frame::Header { channel: 1, class_id: 60, body_size: 5, properties: Bytes::from(props_raw.clone()) };
    check(&wire, &expected);

    let mut headers = FieldTable::new();
    headers.insert("x-a", FieldValue::I32(1));
    let props = BasicProperties { headers: Some(headers), delivery_mode: Some(2), ..Default::default() };
    assert_eq!(BasicProperties::decode(Bytes::from(props_raw.clone())).unwrap(), props);
    assert_eq!(&props.to_raw()[..], &props_raw[..]);
    assert_eq!(raw_properties::delivery_mode(&props_raw), Some(2));

    let mut out = BytesMut::new();
    encode_content_header(&mut out, 1, 60, 5, &props_raw);
    assert_eq!(&out[..], &wire[..]);
}

#[test]
fn body_and_heartbeat() {
    check(b"\x03\x00\x01\x00\x00\x00\x05hello\xce", &Frame::Body { channel: 1, payload: Bytes::from_static(b"hello") });
    check(&[8, 0, 0, 0, 0, 0, 0, 0xCE], &Frame::Heartbeat { channel: 0 });
    let mut out = BytesMut::new();
    encode_heartbeat(&mut out);
    assert_eq!(&out[..], &[8, 0, 0, 0, 0, 0, 0, 0xCE]);
}

#[test]
fn basic_get_empty_writes_empty_cluster_id_and_ignores_it() {
    let wire = [1, 0, 1, 0, 0, 0, 5, 0, 60, 0, 72, 0, 0xCE];
    check(&wire, &Frame::Method { channel: 1, method: Method::BasicGetEmpty });
    // A non-empty reserved cluster-id is accepted and dropped.
    let m = Method::decode(Bytes::from_static(&[0, 60, 0, 72, 2, b'c', b'1'])).unwrap();
    assert_eq!(m, Method::BasicGetEmpty);
}

#[test]
fn field_value_tags() {
    let mut t = FieldTable::new();
    t.insert("t", FieldValue::Bool(true));
    t.insert("b", FieldValue::I8(-1));
    t.insert("B", FieldValue::U8(255));
    t.insert("s", FieldValue::I16(-2));
    t.insert("u", FieldValue::U16(2));
    t.insert("I", FieldValue::I32(-3));
    t.insert("i", FieldValue::U32(3));
    t.insert("l", FieldValue::I64(-4));
    t.insert("f", FieldValue::F32(1.5));
    t.insert("d", FieldValue::F64(-0.25));
    t.insert("D", FieldValue::Decimal { scale: 2, value: 314 });
    t.insert("S", FieldValue::from("hi"));
    t.insert("A", FieldValue::Array(vec![FieldValue::Void]));
    t.insert("T", FieldValue::Timestamp(9));
    t.insert("F", FieldValue::Table(FieldTable::new()));
    t.insert("V", FieldValue::Void);
    t.insert("x", FieldValue::ByteArray(Bytes::from_static(&[0xff])));
    let expected = cat(&[
        b"\x01tt\x01",
        b"\x01bb\xff",
        b"\x01BB\xff",
        b"\x01ss\xff\xfe",
        b"\x01uu\x00\x02",
        b"\x01II\xff\xff\xff\xfd",
        b"\x01ii\x00\x00\x00\x03",
        b"\x01ll\xff\xff\xff\xff\xff\xff\xff\xfc",
        b"\x01ff\x3f\xc0\x00\x00",
        b"\x01dd\xbf\xd0\x00\x00\x00\x00\x00\x00",
        b"\x01DD\x02\x00\x00\x01\x3a",
        b"\x01SS\x00\x00\x00\x02hi",
        b"\x01AA\x00\x00\x00\x01V",
        b"\x01TT\x00\x00\x00\x00\x00\x00\x00\x09",
        b"\x01FF\x00\x00\x00\x00",
        b"\x01VV",
        b"\x01xx\x00\x00\x00\x01\xff",
    ]);
    let mut out = BytesMut::new();
    t.encode(&mut out);
    assert_eq!(&out[4..], &expected[..]);
    assert_eq!(&out[..4], &(expected.len() as u32).to_be_bytes());
    assert_eq!(FieldTable::decode(&mut out.freeze()).unwrap(), t);
}

#[test]
fn connection_close_reply_text() {
    let m = Method::ConnectionClose(ConnectionClose {
        reply_code: reply_code::NOT_FOUND,
        reply_text: "NOT_FOUND".into(),
        class_id: 50,
        method_id: 10,
    });
    let mut out = BytesMut::new();
    m.encode(&mut out);
    assert_eq!(&out[..], b"\x00\x0a\x00\x32\x01\x94\x09NOT_FOUND\x00\x32\x00\x0a");
    assert_eq!(m.name(), "connection.close");
    assert!(m.is_synchronous_request());
}
