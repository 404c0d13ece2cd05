// Package credits is the one place where balances are read and written.
//
// Reads come from the manager's informer cache (until its first list is in, a user it does
// not show yet is read from the apiserver once, by the spec.userID field selector); writes
// go to the apiserver as JSON patches that first test what the decision read (the
// object's UID and generation and the store's write sequence, patch.go), so the apiserver
// refuses any write decided on a state that has since changed, and the store decides again
// from a fresh read. Every decision taken from the cache is therefore either confirmed by the apiserver
// before it is acknowledged, or changes nothing:
//
//   - Writes (set, consume, grant, and a set to the balance the cache already shows): the
//     patch's tests confirm the cached state. A set is always sent,
//     even when it would change nothing, because "nothing to change" is itself a decision
//     taken from the cache; a patch that changes nothing costs the apiserver no write.
//   - Insufficient credits: a refusal changes nothing. It is confirmed by a read from the
//     apiserver while this replica has a write for the user that its cache has not shown,
//     and otherwise at most once a second per user, so a grant made through another
//     replica or kubectl is seen without letting a user who keeps consuming at zero drive
//     one apiserver read per request. Within that second a refusal is answered
//     refusalSettle (50 ms) after its request arrived, and decided again if the informer
//     shows any change of the user's object meanwhile: a grant acknowledged before the
//     request was sent is seen unless the watch lags by more than that. The 402 body
//     carries the balance it was judged against.
//   - Replays of an Idempotency-Key: a key in the cache was written by the apiserver in
//     the same update as the balance it accounts for, so it was applied; answering the
//     recorded result is safe even from a stale cache. A key the cache does not show yet
//     is decided as new, and the precondition turns that into a conflict and a replay.
//   - Untrusted records (two objects claim the user, or a negative balance): refused with
//     an error and a Warning Event, changing nothing; a person must resolve them.
//   - Creation: when the cache shows no record, the store creates the user's object
//     under its derived name (ObjectNameForUser); if it exists already the apiserver
//     answers AlreadyExists and the store updates it instead. An object created under
//     another name (GitOps) that the cache has not shown yet leads to two objects for
//     one user; both are then refused as untrusted until one is removed, so money is
//     neither lost nor doubled.
//
// Operations on one user are written by one writer per replica: those that arrive while a
// write is in flight go together into the next single write (group commit, batch.go), each
// decided in arrival order against the running state and answered on its own. A refusal
// decided within a batch that writes is confirmed by that write's precondition like the
// rest. This replica's writes are read back from an overlay until the informer shows them
// (readyourwrites.go), so a client reads its own write at once and a hot user's next batch
// is decided on the state the last one left.
//
// A write whose answer is lost (deadline, broken connection, apiserver timeout) may or
// may not have been applied. A keyed one is resolved before answering: the store applies
// it again from a fresh read, which either finds the key recorded or applies it under the
// precondition that makes the first attempt fail if it arrives late. A keyless one is
// answered 500, and the client cannot tell whether it was applied (docs/guarantees.md).
package credits
