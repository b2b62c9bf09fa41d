//! The two Redis stream operations both sides of the queue perform: making a
//! stream's consumer group, and retiring an entry (acknowledge, then delete).

use super::wire::GROUP;
use redis::RedisResult;
use redis::aio::ConnectionManager;

/// Creates `stream` (if missing) and its consumer group with id 0, so entries
/// added before the group existed are read too. Whoever touches a stream first
/// creates it, so an existing group (BUSYGROUP) is not an error. True if this
/// call created the group.
pub async fn create_group(con: &mut ConnectionManager, stream: &str) -> RedisResult<bool> {
    let created: RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(con)
        .await;
    match created {
        Ok(()) => Ok(true),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(false),
        Err(e) => Err(e),
    }
}

/// Adds to `pipe` the acknowledgement and deletion of entry `id`: a stream then
/// holds only attempts in flight. Both are no-ops on an entry that is gone.
pub fn retire(pipe: &mut redis::Pipeline, stream: &str, id: &str) {
    pipe.cmd("XACK").arg(stream).arg(GROUP).arg(id).ignore();
    pipe.cmd("XDEL").arg(stream).arg(id).ignore();
}
