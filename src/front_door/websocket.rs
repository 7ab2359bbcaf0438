//! MQTT over WebSockets, for browsers and apps (MQTT.js, Paho JS): each WebSocket connection
//! (subprotocol `mqtt`) is bridged to an in-memory byte stream that the front door serves like
//! a TCP connection: binary frames in, binary frames out. Backpressure carries through: when the
//! session stops reading, the bridge's buffer fills and the WebSocket is no longer read.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// Bytes that may wait in the bridge, each way.
const BRIDGE_BUFFER: usize = 64 * 1024;

/// Completes the WebSocket handshake (answering subprotocol `mqtt` when offered, as MQTT.js
/// requires) and returns the stream the session reads and writes.
pub async fn bridge<S>(socket: S) -> Result<DuplexStream, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ws = tokio_tungstenite::accept_hdr_async(socket, choose_mqtt)
        .await
        .map_err(|e| format!("websocket handshake: {e}"))?;
    let (session_end, bridge_end) = tokio::io::duplex(BRIDGE_BUFFER);
    let (mut ws_out, mut ws_in) = ws.split();
    let (mut from_session, mut to_session) = tokio::io::split(bridge_end);
    tokio::spawn(async move {
        while let Some(Ok(message)) = ws_in.next().await {
            let data = match message {
                Message::Binary(data) => data,
                Message::Close(_) => break,
                // Pings are answered by tungstenite; MQTT is never sent as text.
                _ => continue,
            };
            if to_session.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = to_session.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; BRIDGE_BUFFER];
        while let Ok(n @ 1..) = from_session.read(&mut buf).await {
            if ws_out
                .send(Message::binary(buf[..n].to_vec()))
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = ws_out.close().await;
    });
    Ok(session_end)
}

// The signature is tungstenite's handshake callback's.
#[allow(clippy::result_large_err)]
fn choose_mqtt(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    let offered = request
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == "mqtt");
    if offered {
        response
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static("mqtt"));
    }
    Ok(response)
}
