// Package credits is the one place where balances are read and written: the store around
// the account model (internal/account), which decides every change; this package reads and
// writes the apiserver for it and keeps the caches that make that cheap.
//
// # Files, top to bottom (a file uses only those below it)
//
//   - store.go: Store, what the API calls (Balance, Apply, Transactions, Expire), built of
//     the parts below.
//   - history.go: the history as GET /api/credits/transactions reads it.
//   - writes.go: the writer, which decides a batch on an account and writes it in one
//     patch whose preconditions test what the decision read (account.Tests), deciding again
//     on a fresh read when the apiserver refuses; lostwrite.go: a write whose answer was lost.
//   - refusals.go: how a refusal decided on the cache is confirmed.
//   - batch.go: one writer per user and replica (group commit).
//   - reads.go: the reader, with three verbs: cached (the index, with this replica's own
//     writes laid over it), current (cached, or during warm-up the apiserver), fetch (the
//     apiserver, by name); warmup.go: reads before the index has synced; overlay.go: this
//     replica's writes until the cache shows them.
//   - events.go: logs and Events; objects.go: the index's interface and one apiserver GET;
//     index.go: user → objects, fed by the informer; grantkeys.go: CreditGrant key → users
//     (GrantKeyHolders), kept by the index; payers.go: Stripe PaymentIntent → users (the
//     same index) and Store.FollowPayment, a miss confirmed by one label-selected LIST;
//     early.go: refunds and disputes that came before their purchase, remembered in a
//     ConfigMap for it; transform.go: the cache's form of an object (account.CacheForm).
//
// # What is confirmed, and how
//
// Reads come from the manager's informer cache; writes go to the apiserver as JSON patches
// that first test what the decision read (the object's UID and generation and the write
// sequence), so the apiserver refuses any write decided on a state that has since changed.
// Every decision taken from the cache is therefore either confirmed by the apiserver before
// it is acknowledged, or changes nothing:
//
//   - Writes (set, consume, grant, reserve, capture, release, expire; a set to the balance
//     the cache already shows too): the patch's tests confirm the cached state. A set is
//     always sent, because "nothing to change" is itself a decision taken from the cache.
//   - Insufficient credits: a refusal changes nothing. It is confirmed by a read from the
//     apiserver while this replica has a write for the user that its cache has not shown,
//     and otherwise at most once a second per user; within that second it is answered
//     refusalSettle (50 ms) after its request arrived, and decided again if the informer
//     shows any change of the user's object meanwhile. The 402 body carries the balance it
//     was judged against.
//   - A hold the cache does not show (capture, release): always confirmed by a read, since
//     another replica may have just made it and a caller takes 404 as final.
//   - Replays of an Idempotency-Key: a key in the cache was written by the apiserver in the
//     same update as the balance it accounts for, so it was applied; answering the recorded
//     result is safe even from a stale cache. A key the cache does not show yet is decided
//     as new, and the precondition turns that into a conflict and a replay. The cache holds
//     only a digest of grant keys: a decision that needs them (account.ErrNeedWholeRecord)
//     is made again on the record read from the apiserver.
//   - Untrusted records (two objects claim the user, a balance or holds that break an
//     invariant, a damaged key ledger: account.ErrUntrusted): refused with an error and a
//     Warning Event, changing nothing; a person must resolve them. Parts that do not guard
//     money (closed holds, history) that cannot be read are reported and read as empty.
//   - Creation: when there is no record, the store creates the user's object under its
//     derived name (account.ObjectNameForUser); if it exists already the apiserver answers
//     AlreadyExists and the store updates it instead. An object created under another name
//     (GitOps) that the cache has not shown yet leads to two objects for one user; both are
//     then refused as untrusted until one is removed, so money is neither lost nor doubled.
//
// # Holds, history, the cache's form, the index, warm-up
//
// Holds are part of the account (spec.reservations): the controller returns a due one
// through Store.Expire. The history is written in the same patch as the change it records;
// the cache keeps only what appending needs, so transactions are read from the apiserver,
// at most once a second per user (history.go). The informer's objects are kept in the form
// decisions read (transform.go) and indexed by user (index.go), so a balance read is one map
// lookup. Until the informer's first list is in, a user the index does not show is read by
// the spec.userID field selector, within a replica-wide budget, and what it finds is
// remembered (warmup.go): a duplicated user is refused then too.
//
// Operations on one user are written by one writer per replica: those that arrive while a
// write is in flight go together into the next single write (batch.go), each decided in
// arrival order against the running account and answered on its own. This replica's
// writes are read back from an overlay until the informer shows them (overlay.go).
//
// A write whose answer is lost (deadline, broken connection, apiserver timeout) may or may
// not have been applied. A keyed one is resolved before answering: the store applies it
// again from a fresh read, which either finds the key recorded or applies it under the
// precondition that makes the first attempt fail if it arrives late. A keyless one is
// answered 500, and the client cannot tell whether it was applied (docs/guarantees.md).
package credits
