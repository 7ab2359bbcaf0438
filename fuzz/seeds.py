#!/usr/bin/env python3
"""Writes the hand-made starting inputs of each fuzz target into fuzz/corpus/<target>/.

The committed corpus is these plus what fuzzing found worth keeping (minimised with
`cargo fuzz cmin`); run this again only to start a corpus afresh.
"""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(byte1, body):
    return bytes([byte1]) + varint(len(body)) + body


def s(text):
    text = text.encode() if isinstance(text, str) else text
    return struct.pack(">H", len(text)) + text


def props(*items):
    body = b"".join(items)
    return varint(len(body)) + body


def connect(level, client_id, will=None, login=None, v5props=b""):
    name, lvl = (b"MQIsdp", 3) if level == 3 else (b"MQTT", level)
    flags = 0x02
    payload = s(client_id)
    if will:
        flags |= 0x04 | (1 << 3) | 0x20
        if level == 5:
            payload += props(b"\x18\x00\x00\x00\x05")  # will delay 5 s
        payload += s(will[0]) + s(will[1])
    if login:
        flags |= 0xC0
        payload += s(login[0]) + s(login[1])
    header = s(name) + bytes([lvl, flags, 0, 30])
    if level == 5:
        header += props(v5props)
    return packet(0x10, header + payload)


def publish(level, topic, payload, qos=0, pkid=1, retain=False, v5props=b""):
    body = s(topic)
    if qos:
        body += struct.pack(">H", pkid)
    if level == 5:
        body += props(v5props)
    return packet(0x30 | (qos << 1) | int(retain), body + payload)


def subscribe(level, pkid, *filters):
    body = struct.pack(">H", pkid)
    if level == 5:
        body += props(b"\x0b\x07")  # subscription identifier 7
    for f, opts in filters:
        body += s(f) + bytes([opts])
    return packet(0x82, body)


def unsubscribe(level, pkid, *filters):
    body = struct.pack(">H", pkid) + (props() if level == 5 else b"")
    return packet(0xA2, body + b"".join(s(f) for f in filters))


def ack(kind, pkid, level):
    body = struct.pack(">H", pkid) + (b"\x00\x00" if level == 5 else b"")
    return packet(kind, body)


SEED_PAYLOADS = [
    ("autocore/ESP32_001/telemetry", '{"device_id":"ESP32_001","temperature":25.6,"humidity":45.2,"voltage":3.28,"memory_free":45120,"timestamp":"2025-01-28T10:30:15Z"}'),
    ("autocore/ESP32_001/status", '{"device_id":"ESP32_001","status":"online","ip_address":"192.168.1.100","firmware_version":"1.2.0","uptime":3600,"timestamp":"2025-01-28T10:30:00Z"}'),
    ("autocore/ESP32_001/relay/0/status", '{"device_id":"ESP32_001","relay_index":0,"state":true,"triggered_by":"manual","timestamp":"2025-01-28T10:30:30Z"}'),
    ("autocore/ESP32_001/display/interaction", '{"button":"home"}'),
    ("autocore/ESP32_001/system/boot", "booted"),
    ("sensors/device_01", '{"device_id":"device_01","temperature":28.4,"humidity":65.2,"voltage":229.1,"current":3.4,"pressure":1008.5}'),
    ("devices/test-device-123/telemetry", '{"deviceId":"test-device-123","ts":1714041600000,"temperature":28.5,"humidity":55.2}'),
    ("devices/device123/telemetry", '{"temperature": 75, "humidity": 60, "deviceId": "device123"}'),
    ("home/temperature", '{"device_id":"temp_sensor_01","temperature":22.5,"humidity":45.3,"status":"HIGH","timestamp":"2026-01-22T14:30:00"}'),
    ("home/power", '{"device_id":"power_switch_01","status":"EB_ON","timestamp":"2026-01-22T14:35:15"}'),
    ("home/fingerprint", '{"device_id":"fingerprint_01","user_id":"user_123","authStatus":"PASS","timestamp":"2026-01-22T14:40:22"}'),
    ("plant/line1/status", '{"status": 3, "timestamp": "2024-12-10T10:21:45Z"}'),
]


def sessions():
    """Whole connections: (CONNECT choice, bytes after it)."""
    for level in (3, 4, 5):
        v = 5 if level == 5 else 4
        rest = [
            subscribe(v, 1, ("a/#", 1), ("$SYS/broker/uptime", 0)),
            publish(v, "a/b", b"hello", qos=1, pkid=2),
            publish(v, "a/c", b"retained", qos=2, pkid=3, retain=True),
            ack(0x62, 3, v),  # PUBREL
            unsubscribe(v, 4, "a/#"),
            packet(0xC0, b""),  # PINGREQ
        ]
        for topic, payload in SEED_PAYLOADS[:4]:
            rest.append(publish(v, topic, payload.encode(), qos=1, pkid=5))
        if v == 5:
            rest.append(publish(5, "home/gettemp/app1", b'{"device_id":"temp_sensor_01"}',
                                v5props=b"\x08" + s("replies/app1") + b"\x09" + s(b"\x01\x02")))
            rest.append(publish(5, "t", b"x", v5props=b"\x23\x00\x01"))  # a topic alias
        rest.append(packet(0xE0, b"\x00\x00" if v == 5 else b""))
        yield level, b"".join(rest)


def main():
    # packets and connection: the first byte picks the version (packets) or the CONNECT
    # (connection: 0 none, 1 MQTT 3.1, 2 3.1.1, 3 5).
    for level, rest in sessions():
        choice = {3: 1, 4: 2, 5: 3}[level]
        put("connection", bytes([choice]) + rest)
        put("packets", bytes([choice]) + connect(level, "c1") + rest)
    for level in (3, 4, 5):
        full = connect(level, "w1", will=("wills/w1", "gone"), login=("user", "pass"))
        put("connection", b"\x00" + full + publish(5 if level == 5 else 4, "x/y", b"z"))
        put("packets", b"\x00" + full)
    put("packets", b"\x02" + connect(5, "", v5props=b"\x11\x00\x00\x00\x3c\x21\x00\x0a"))

    for topic, payload in SEED_PAYLOADS:
        put("payloads", topic.encode() + b"\x00" + payload.encode())

    for t in ["2026-01-22T14:30:00", "2025-01-28T10:30:15Z", "2026-01-22T14:30:00+05:30",
              "2026-01-22 14:30:00.123", "2026-01-22", "1714041600000", "1714041600",
              "1714041600.5", '"1714041600"', "-1", "2026-03-29T02:30:00"]:
        put("device_time", t)

    queries = [
        (0, "topic=a/%23&limit=10&cursor=12"),
        (0, "device_id=device123&from=2026-01-01&to=2026-02-01T00:00:00Z"),
        (3, "metric=temperature&from=1714041600000&to=1714045200000&bucket=1m"),
        (4, "state=open&device_id=x&type=HIGH_TEMP&limit=5"),
        (5, "limit=1&cursor=3"),
        (7, "device_id=temp_sensor_01&hours=24&limit=100"),
        (12, "deviceId=test-device-123&limit=10"),
        (13, "deviceId=device123&hours=6"),
        (14, "alert_type=HIGH_TEMP&deviceId=device123"),
        (1, "access_token=t&limit=2"),
    ]
    for choice, q in queries:
        put("http_query", bytes([choice]) + q.encode())

    with open(os.path.join(HERE, "..", "rumqttd.toml"), "rb") as f:
        put("config", f.read())
    put("config", '[mqtt]\nlisten = "127.0.0.1:0"\nmax_connections = 10\n'
                  '[[route]]\nfilter = "x/+/y"\nkind = "telemetry"\ndevice_id = ["topic:1"]\n'
                  '[[rule]]\nfilter = "x/+/y"\nmetric = "t"\nmax = 1.5\n'
                  '[[rpc]]\nrequest = "q/+"\nreply = "r/{client_id}"\ntable = "temperature"\n')
    put("config", '[store]\nstop_timeout = "3s"\n[store.retention]\ntelemetry = "30days"\n'
                  '[http]\nheader_read_timeout = "1s"\n')


if __name__ == "__main__":
    main()
