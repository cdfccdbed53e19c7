//! A pipelined transaction on one pooled session, for the compatibility
//! layer's writes: `BEGIN` goes out with the first statements (the lock
//! and the read of the user's rows) and `COMMIT` right behind the last
//! ones (the writes), so a `patch` or `save` costs two round trips where a
//! `BEGIN` / statement / `COMMIT` sequence costs four or five.
//!
//! Every statement is prepared before anything is sent (no round trip once
//! the session has cached it), so the messages leave in the order given:
//! the first poll of a query on a prepared statement sends it. A statement
//! that fails aborts the transaction on the server, every later one fails
//! with "current transaction is aborted" and a trailing `COMMIT` becomes a
//! rollback; the first error in order is the one reported. A session whose
//! transaction may still be open when the call is abandoned (its future
//! dropped) is closed rather than returned to the pool.

use crate::core::id::UserId;
use crate::error::{Error, Result};
use crate::pg::codec::Param;
use deadpool_postgres::{Object, Transaction};
use futures_util::future::MaybeDone;
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

/// A statement to send: its SQL, its parameters and what it does, for the
/// error that names it.
pub(crate) struct Planned<'a> {
    pub sql: &'a str,
    pub params: Vec<Param<'a>>,
    pub what: Cow<'static, str>,
}

impl<'a> Planned<'a> {
    pub fn new(
        sql: &'a str,
        params: Vec<Param<'a>>,
        what: impl Into<Cow<'static, str>>,
    ) -> Planned<'a> {
        Planned {
            sql,
            params,
            what: what.into(),
        }
    }
}

/// One user's transaction on a pooled session, pipelined.
pub(crate) struct Session {
    client: Option<Object>,
    user: UserId,
    open: bool,
}

type Reply<'a> = Pin<Box<dyn Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send + 'a>>;

impl Session {
    /// A session for `user`'s call; nothing is sent yet.
    pub fn new(client: Object, user: UserId) -> Session {
        Session {
            client: Some(client),
            user,
            open: false,
        }
    }

    fn client(&self) -> &Object {
        self.client
            .as_ref()
            .expect("the session is held until dropped")
    }

    /// Sends `BEGIN` and `stmts`, one round trip, and returns each
    /// statement's rows. On an error the transaction is rolled back.
    pub async fn begin_with(&mut self, stmts: Vec<Planned<'_>>) -> Result<Vec<Vec<Row>>> {
        self.open = true;
        match self.send(Some("BEGIN"), stmts, None).await {
            Ok(rows) => Ok(rows),
            Err(e) => {
                self.rollback().await;
                Err(e)
            }
        }
    }

    /// Sends `stmts` and `COMMIT`, one round trip. The transaction is over
    /// whatever the outcome (a failed statement turns the `COMMIT` into a
    /// rollback).
    pub async fn commit_with(mut self, stmts: Vec<Planned<'_>>) -> Result<()> {
        let out = self.send(None, stmts, Some("COMMIT")).await;
        if out.is_ok() {
            self.open = false;
        }
        // on an error the session is dropped still marked open: its state
        // is unknown (COMMIT may not have been read), so it is closed
        out.map(drop)
    }

    /// Rolls the transaction back; a session that cannot is closed.
    pub async fn rollback(&mut self) {
        if self.open && self.client().batch_execute("ROLLBACK").await.is_ok() {
            self.open = false;
        }
    }

    /// Prepares every statement, then sends `first`, the statements and
    /// `last` in that order and waits for every reply; the first error in
    /// that order wins, named with the user.
    async fn send(
        &self,
        first: Option<&'static str>,
        stmts: Vec<Planned<'_>>,
        last: Option<&'static str>,
    ) -> Result<Vec<Vec<Row>>> {
        let user = &self.user;
        pipeline(self.client(), first, &stmts, last, |what, e| {
            Error::db_user(user, what, e)
        })
        .await
    }
}

/// Where statements are pipelined: a pooled session, or a transaction on
/// one.
pub(crate) trait Pipe: Sync {
    /// The session's cached statement for `sql`, prepared on first use.
    fn prepare_cached<'a>(
        &'a self,
        sql: &'a str,
    ) -> impl Future<Output = Result<Statement, tokio_postgres::Error>> + Send + 'a;
    /// Runs a prepared statement: sent when first polled.
    fn run<'a>(&'a self, stmt: &'a Statement, params: &'a [&'a (dyn ToSql + Sync)]) -> Reply<'a>;
    /// Runs a statement of the simple protocol: sent when first polled.
    fn simple<'a>(&'a self, sql: &'static str) -> Reply<'a>;
}

impl Pipe for Object {
    fn prepare_cached<'a>(
        &'a self,
        sql: &'a str,
    ) -> impl Future<Output = Result<Statement, tokio_postgres::Error>> + Send + 'a {
        (**self).prepare_cached(sql)
    }
    fn run<'a>(&'a self, stmt: &'a Statement, params: &'a [&'a (dyn ToSql + Sync)]) -> Reply<'a> {
        Box::pin(self.query(stmt, params))
    }
    fn simple<'a>(&'a self, sql: &'static str) -> Reply<'a> {
        Box::pin(async move { self.batch_execute(sql).await.map(|()| Vec::new()) })
    }
}

impl Pipe for Transaction<'_> {
    fn prepare_cached<'a>(
        &'a self,
        sql: &'a str,
    ) -> impl Future<Output = Result<Statement, tokio_postgres::Error>> + Send + 'a {
        Transaction::prepare_cached(self, sql)
    }
    fn run<'a>(&'a self, stmt: &'a Statement, params: &'a [&'a (dyn ToSql + Sync)]) -> Reply<'a> {
        Box::pin(self.query(stmt, params))
    }
    fn simple<'a>(&'a self, sql: &'static str) -> Reply<'a> {
        Box::pin(async move { self.batch_execute(sql).await.map(|()| Vec::new()) })
    }
}

/// Sends `first`, the statements and `last` on `conn` as one pipeline and
/// returns each statement's rows (not `first`'s and `last`'s): every
/// statement is prepared before anything is sent (no round trip once the
/// session has cached it), so the messages leave, and run, in the order
/// given. A failed statement aborts the transaction on the server and
/// every later one fails with "current transaction is aborted": the
/// first error in order is the one returned, made by `err` from what the
/// statement does.
pub(crate) async fn pipeline<P: Pipe>(
    conn: &P,
    first: Option<&'static str>,
    stmts: &[Planned<'_>],
    last: Option<&'static str>,
    err: impl Fn(&str, tokio_postgres::Error) -> Error,
) -> Result<Vec<Vec<Row>>> {
    let mut prepared = Vec::with_capacity(stmts.len());
    for s in stmts {
        let stmt = conn
            .prepare_cached(s.sql)
            .await
            .map_err(|e| err(&format!("preparing: {}", s.what), e))?;
        prepared.push(stmt);
    }
    let refs: Vec<Vec<&(dyn ToSql + Sync)>> = stmts
        .iter()
        .map(|s| s.params.iter().map(|p| p.as_ref() as _).collect())
        .collect();
    let mut replies: Vec<MaybeDone<Reply<'_>>> = Vec::with_capacity(stmts.len() + 2);
    replies.extend(first.map(|sql| MaybeDone::Future(conn.simple(sql))));
    for (stmt, params) in prepared.iter().zip(&refs) {
        replies.push(MaybeDone::Future(conn.run(stmt, params)));
    }
    replies.extend(last.map(|sql| MaybeDone::Future(conn.simple(sql))));
    // every pass polls every reply in order: the first pass sends them
    std::future::poll_fn(|cx| {
        let mut done = true;
        for r in replies.iter_mut() {
            done &= Pin::new(r).poll(cx).is_ready();
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    let simple_what = |sql: &'static str| match sql {
        "BEGIN" => "beginning a transaction",
        "COMMIT" => "committing",
        other => other,
    };
    let whats = first
        .map(simple_what)
        .into_iter()
        .chain(stmts.iter().map(|s| &*s.what))
        .chain(last.map(simple_what));
    let mut out = Vec::with_capacity(replies.len());
    for (r, what) in replies.iter_mut().zip(whats) {
        let rows = Pin::new(r)
            .take_output()
            .expect("every reply is done")
            .map_err(|e| err(what, e))?;
        out.push(rows);
    }
    // the statements' rows, without `first`'s and `last`'s (none)
    if first.is_some() {
        out.remove(0);
    }
    out.truncate(stmts.len());
    Ok(out)
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.open
            && let Some(client) = self.client.take()
        {
            // a transaction may still be open on it: never back to the pool
            drop(Object::take(client));
        }
    }
}

/// A pooled session lent to one call that opens a transaction on it
/// through the driver (the wrapper, on-demand migration, a migration or a
/// rollback by hand). If the call is abandoned (its future dropped, e.g.
/// by a request timeout) before [`Lent::done`], the statement it may
/// still be running is cancelled and the session closed rather than
/// pooled: the next call would otherwise wait for that statement, and its
/// transaction would keep the user's row locked until it ended.
pub(crate) struct Lent {
    client: Option<Object>,
}

impl Lent {
    /// Lends `client` to a call.
    pub fn new(client: Object) -> Lent {
        Lent {
            client: Some(client),
        }
    }

    /// The session.
    pub fn client(&mut self) -> &mut Object {
        self.client
            .as_mut()
            .expect("the session is held until done or dropped")
    }

    /// The call ran to its end (its transaction committed or rolled
    /// back): the session goes back to the pool.
    pub fn done(mut self) {
        self.client = None;
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // the cancel request goes without TLS: a server that accepts
            // TLS connections only refuses it, and the session is closed
            // anyway (its transaction then ends with its statement)
            let token = client.cancel_token();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = token.cancel_query(tokio_postgres::NoTls).await;
                });
            }
            drop(Object::take(client));
        }
    }
}
