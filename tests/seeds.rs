//! Each seed's own example payloads, sent with mosquitto_pub, give the rows, device states and
//! alerts the seed describes, with no config file.

mod common;

use common::*;

const SEED_001_STATUS: &str = r#"{"device_id":"ESP32_001","status":"online","ip_address":"192.168.1.100","firmware_version":"1.2.0","uptime":3600,"timestamp":"2025-01-28T10:30:00Z"}"#;
const SEED_001_TELEMETRY: &str = r#"{"device_id":"ESP32_001","temperature":25.6,"humidity":45.2,"voltage":3.28,"memory_free":45120,"timestamp":"2025-01-28T10:30:15Z"}"#;
const SEED_001_RELAY: &str = r#"{"device_id":"ESP32_001","relay_index":0,"state":true,"triggered_by":"manual","timestamp":"2025-01-28T10:30:30Z"}"#;
const SEED_002: &str = r#"{"device_id":"device_01","temperature":28.4,"humidity":65.2,"voltage":229.1,"current":3.4,"pressure":1008.5}"#;
const SEED_003_FILE: &str =
    r#"{"deviceId":"test-device-123","ts":1714041600000,"temperature":28.5,"humidity":55.2}"#;
const SEED_003_HOT: &str = r#"{"temperature": 75, "humidity": 60, "deviceId": "device123"}"#;
const SEED_004_TEMP: &str = r#"{"device_id":"temp_sensor_01","temperature":22.5,"humidity":45.3,"status":"HIGH","timestamp":"2026-01-22T14:30:00"}"#;
const SEED_004_POWER: &str =
    r#"{"device_id":"power_switch_01","status":"EB_ON","timestamp":"2026-01-22T14:35:15"}"#;
const SEED_004_FINGER: &str = r#"{"device_id":"fingerprint_01","user_id":"user_123","authStatus":"PASS","timestamp":"2026-01-22T14:40:22"}"#;

#[test]
fn seed_000_status_messages_become_status_records() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    mosquitto_pub(
        &edgemq,
        "status",
        br#"{"status": 3, "timestamp": "2024-12-10T10:21:45Z"}"#,
        &[],
    );
    mosquitto_pub(
        &edgemq,
        "status/client-7",
        br#"{"status": 0, "timestamp": "2024-12-10T10:21:46+00:00"}"#,
        &[],
    );
    let rows = rows_eventually(
        &edgemq.db,
        "SELECT status, timestamp, device_time FROM status_records ORDER BY id",
        2,
    );
    assert_eq!(
        rows,
        [
            ["3", "2024-12-10T10:21:45Z", "1733826105000"],
            ["0", "2024-12-10T10:21:46+00:00", "1733826106000"]
        ]
    );
}

#[test]
fn seed_001_autocore_fills_the_registry_relays_and_telemetry() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    mosquitto_pub(
        &edgemq,
        "autocore/ESP32_001/status",
        SEED_001_STATUS.as_bytes(),
        &[],
    );
    mosquitto_pub(
        &edgemq,
        "autocore/ESP32_001/telemetry",
        SEED_001_TELEMETRY.as_bytes(),
        &[],
    );
    mosquitto_pub(
        &edgemq,
        "autocore/ESP32_001/relay/0/status",
        SEED_001_RELAY.as_bytes(),
        &[],
    );
    mosquitto_pub(
        &edgemq,
        "autocore/ESP32_001/display/interaction",
        br#"{"button":"home"}"#,
        &[],
    );
    mosquitto_pub(&edgemq, "autocore/ESP32_001/system/boot", b"booted", &[]);

    let kinds = rows_eventually(
        &edgemq.db,
        "SELECT kind, device_id FROM messages ORDER BY id",
        5,
    );
    let kinds: Vec<_> = kinds
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("device_status", "ESP32_001"),
            ("telemetry", "ESP32_001"),
            ("relay", "ESP32_001"),
            ("event", "ESP32_001"),
            ("event", "ESP32_001")
        ]
    );
    let device = query(&edgemq.db, "SELECT is_online, ip_address, firmware_version, uptime FROM devices WHERE device_id = 'ESP32_001'");
    assert_eq!(device, [["1", "192.168.1.100", "1.2.0", "3600"]]);
    let relays = query(
        &edgemq.db,
        "SELECT device_id, relay_index, current_state FROM relays",
    );
    assert_eq!(relays, [["ESP32_001", "0", "1"]]);
    let history = query(
        &edgemq.db,
        "SELECT relay_index, state, triggered_by, ts FROM relay_history",
    );
    assert_eq!(history, [["0", "1", "manual", "1738060230000"]]);
    let telemetry = query(
        &edgemq.db,
        "SELECT device_id, ts, json_extract(payload, '$.memory_free') FROM telemetry",
    );
    assert_eq!(telemetry, [["ESP32_001", "1738060215000", "45120"]]);
    let averages = query(
        &edgemq.db,
        "SELECT name, value FROM device_state WHERE name LIKE 'avg/%' ORDER BY name",
    );
    assert_eq!(averages[2], ["avg/temperature", "25.6000"]);
}

#[test]
fn seed_001_moving_average_and_anomaly_alert() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    // Steady readings around 25 °C, then a spike, then back to normal.
    for i in 0..15 {
        let t = 25.0 + f64::from(i % 3) * 0.1;
        mosquitto_pub(
            &edgemq,
            "autocore/ESP32_009/telemetry",
            format!(r#"{{"temperature":{t}}}"#).as_bytes(),
            &[],
        );
    }
    mosquitto_pub(
        &edgemq,
        "autocore/ESP32_009/telemetry",
        br#"{"temperature":60.0}"#,
        &[],
    );
    let alert = rows_eventually(
        &edgemq.db,
        "SELECT type, metric, value, cleared_at FROM alerts",
        1,
    );
    assert_eq!(alert, [["ANOMALY", "temperature", "60", "NULL"]]);
    mosquitto_pub(
        &edgemq,
        "autocore/ESP32_009/telemetry",
        br#"{"temperature":25.1}"#,
        &[],
    );
    let cleared = rows_eventually(
        &edgemq.db,
        "SELECT id FROM alerts WHERE cleared_at IS NOT NULL",
        1,
    );
    assert_eq!(cleared.len(), 1);
    let avg = query(
        &edgemq.db,
        "SELECT value FROM device_state WHERE device_id = 'ESP32_009' AND name = 'avg/temperature'",
    );
    let avg: f64 = avg[0][0].parse().unwrap();
    assert!(avg > 25.0 && avg < 28.0, "moving average {avg}");
}

#[test]
fn seed_001_a_last_will_marks_the_device_offline() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    // A device that announces itself and leaves a last will, then vanishes without DISCONNECT.
    let mut device = Sub::start(
        &edgemq,
        &[
            "-i",
            "esp32-002",
            "-t",
            "autocore/ESP32_002/cmd",
            "--will-topic",
            "autocore/ESP32_002/status",
            "--will-payload",
            r#"{"device_id":"ESP32_002","status":"offline"}"#,
        ],
    );
    mosquitto_pub(
        &edgemq,
        "autocore/ESP32_002/status",
        br#"{"device_id":"ESP32_002","status":"online"}"#,
        &[],
    );
    rows_eventually(
        &edgemq.db,
        "SELECT 1 FROM devices WHERE device_id = 'ESP32_002' AND is_online = 1",
        1,
    );
    device.kill(); // SIGKILL: the broker sees the connection drop and sends the will.
    let alert = rows_eventually(
        &edgemq.db,
        "SELECT device_id, type, cleared_at FROM alerts",
        1,
    );
    assert_eq!(alert, [["ESP32_002", "OFFLINE", "NULL"]]);
    let online = query(
        &edgemq.db,
        "SELECT is_online FROM devices WHERE device_id = 'ESP32_002'",
    );
    assert_eq!(online, [["0"]]);
}

#[test]
fn seed_002_sensor_readings_and_threshold_alerts() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    mosquitto_pub(&edgemq, "sensors/device1", SEED_002.as_bytes(), &[]);
    let out_of_range = r#"{"device_id":"device_01","temperature":58.4,"humidity":5.0,"voltage":229.1,"current":3.4,"pressure":1008.5}"#;
    mosquitto_pub(&edgemq, "sensors/device1", out_of_range.as_bytes(), &[]);
    let alerts = rows_eventually(
        &edgemq.db,
        "SELECT device_id, type, metric, value, threshold, payload FROM alerts ORDER BY type",
        2,
    );
    assert_eq!(
        alerts,
        [
            [
                "device_01",
                "HUMIDITY_OUT_OF_RANGE",
                "humidity",
                "5",
                "10",
                r#"{"humidity":5.0,"threshold":10.0}"#
            ],
            [
                "device_01",
                "TEMPERATURE_OUT_OF_RANGE",
                "temperature",
                "58.4",
                "50",
                r#"{"temperature":58.4,"threshold":50.0}"#
            ]
        ]
    );
    let rows = query(
        &edgemq.db,
        "SELECT device_id, kind FROM messages WHERE client_id IS NOT 'edgemq-outbox'",
    );
    assert_eq!(
        rows,
        [["device_01", "telemetry"], ["device_01", "telemetry"]]
    );
}

#[test]
fn seed_003_telemetry_and_high_temp() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    mosquitto_pub(
        &edgemq,
        "devices/test-device-123/telemetry",
        SEED_003_FILE.as_bytes(),
        &[],
    );
    mosquitto_pub(
        &edgemq,
        "devices/device123/telemetry",
        SEED_003_HOT.as_bytes(),
        &[],
    );
    let rows = rows_eventually(
        &edgemq.db,
        "SELECT device_id, device_time = received_at, device_time FROM messages
          WHERE kind IS NOT NULL ORDER BY id",
        2,
    );
    assert_eq!(rows[0], ["test-device-123", "0", "1714041600000"]);
    assert_eq!(rows[1][..2], ["device123", "1"], "no ts: arrival time");
    let alert = rows_eventually(&edgemq.db, "SELECT device_id, type, payload FROM alerts", 1);
    assert_eq!(
        alert,
        [[
            "device123",
            "HIGH_TEMP",
            r#"{"temperature":75.0,"threshold":30.0}"#
        ]]
    );
}

#[test]
fn seed_004_tables_answer_the_seeds_own_queries() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    mosquitto_pub(&edgemq, "home/temperature", SEED_004_TEMP.as_bytes(), &[]);
    mosquitto_pub(&edgemq, "home/temperature", br#"{"device_id":"temp_sensor_01","temperature":21.0,"humidity":40.0,"status":"LOW","timestamp":"2026-01-22T15:30:00"}"#, &[]);
    mosquitto_pub(&edgemq, "home/power", SEED_004_POWER.as_bytes(), &[]);
    mosquitto_pub(
        &edgemq,
        "home/power",
        br#"{"device_id":"power_switch_01","status":"DG_OFF","timestamp":"2026-01-22T14:36:00"}"#,
        &[],
    );
    mosquitto_pub(&edgemq, "home/fingerprint", SEED_004_FINGER.as_bytes(), &[]);
    rows_eventually(&edgemq.db, FROM_CLIENTS, 5);

    let temps = query(
        &edgemq.db,
        "SELECT * FROM temperature_logs WHERE date = '2026-01-22' ORDER BY timestamp DESC",
    );
    let temps: Vec<_> = temps.iter().map(|r| r[1..7].to_vec()).collect();
    assert_eq!(
        temps,
        [
            [
                "temp_sensor_01",
                "21",
                "40",
                "LOW",
                "2026-01-22T15:30:00",
                "2026-01-22"
            ],
            [
                "temp_sensor_01",
                "22.5",
                "45.3",
                "HIGH",
                "2026-01-22T14:30:00",
                "2026-01-22"
            ]
        ]
    );
    let power = query(&edgemq.db, "SELECT device_id, ebstatus, dgstatus, timestamp, date FROM power_status_logs ORDER BY timestamp DESC LIMIT 10");
    assert_eq!(
        power,
        [
            [
                "power_switch_01",
                "",
                "OFF",
                "2026-01-22T14:36:00",
                "2026-01-22"
            ],
            [
                "power_switch_01",
                "ON",
                "",
                "2026-01-22T14:35:15",
                "2026-01-22"
            ]
        ]
    );
    let finger = query(&edgemq.db, "SELECT device_id, user_id, auth_status, timestamp, date FROM fingerprint_logs WHERE date = '2026-01-22' ORDER BY timestamp DESC");
    assert_eq!(
        finger,
        [[
            "fingerprint_01",
            "user_123",
            "PASS",
            "2026-01-22T14:40:22",
            "2026-01-22"
        ]]
    );
    let counts = query(
        &edgemq.db,
        "SELECT device_id, COUNT(*) as count FROM temperature_logs GROUP BY device_id",
    );
    assert_eq!(counts, [["temp_sensor_01", "2"]]);
    // Columns are the seed's, by name.
    let columns = query(
        &edgemq.db,
        "SELECT group_concat(name) FROM pragma_table_info('temperature_logs')",
    );
    assert_eq!(
        columns,
        [["id,device_id,temperature,humidity,status,timestamp,date,created_at"]]
    );
    let state = query(
        &edgemq.db,
        "SELECT name, value FROM device_state WHERE device_id = 'power_switch_01' ORDER BY name",
    );
    assert_eq!(state, [["dg", "OFF"], ["eb", "ON"]]);
}
