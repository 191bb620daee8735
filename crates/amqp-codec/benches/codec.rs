//! Micro-benchmarks of the codec's hot path: one publish (method, content header, body)
//! encoded into a buffer, and a read buffer of 100 publishes decoded back into frames.
//! Run with `cargo bench -p amqp-codec`.

use amqp_codec::*;
use bytes::BytesMut;
use divan::counter::ItemsCount;
use divan::{black_box, Bencher};

fn main() {
    divan::main();
}

const FRAME_MAX: u32 = 131_072;

fn publish_parts(size: usize) -> (Method, bytes::Bytes, Vec<u8>) {
    let publish = Method::BasicPublish(BasicPublish { routing_key: "orders.created".into(), ..Default::default() });
    let props = BasicProperties { delivery_mode: Some(2), ..Default::default() }.to_raw();
    (publish, props, vec![b'x'; size])
}

fn encode_publish(buf: &mut BytesMut, (publish, props, body): &(Method, bytes::Bytes, Vec<u8>)) {
    encode_method(buf, 1, publish);
    encode_content_header(buf, 1, BASIC_CLASS_ID, body.len() as u64, props);
    encode_body(buf, 1, body, FRAME_MAX);
}

#[divan::bench(args = [16, 1024, 65536])]
fn encode_one_publish(bencher: Bencher, size: usize) {
    let parts = publish_parts(size);
    let mut buf = BytesMut::with_capacity(2 * size + 1024);
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        buf.clear();
        encode_publish(&mut buf, &parts);
        black_box(buf.len())
    });
}

/// Includes copying the 100 publishes into a fresh buffer each time (as a socket read would).
#[divan::bench(args = [16, 1024])]
fn decode_100_publishes(bencher: Bencher, size: usize) {
    let parts = publish_parts(size);
    let mut wire = BytesMut::new();
    for _ in 0..100 {
        encode_publish(&mut wire, &parts);
    }
    bencher.counter(ItemsCount::new(100usize)).bench_local(|| {
        let mut buf = BytesMut::from(&wire[..]);
        let mut frames = 0;
        while let Some(frame) = decode_frame(&mut buf, FRAME_MAX).expect("valid frames") {
            black_box(&frame);
            frames += 1;
        }
        assert_eq!(frames, 300);
    });
}

#[divan::bench]
fn decode_properties_with_headers(bencher: Bencher) {
    let mut headers = FieldTable::new();
    headers.insert(ShortStr::from_static("tenant"), FieldValue::LongStr("acme".into()));
    headers.insert(ShortStr::from_static("attempt"), FieldValue::I32(3));
    let raw = BasicProperties {
        content_type: Some("application/json".into()),
        correlation_id: Some("c-42".into()),
        delivery_mode: Some(2),
        headers: Some(headers),
        ..Default::default()
    }
    .to_raw();
    bencher.bench_local(|| black_box(BasicProperties::decode(raw.clone()).expect("valid")));
}
