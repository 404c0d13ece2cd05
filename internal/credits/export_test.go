package credits

// MayBeStale lets the store's integration tests count writes refused as stale.
var MayBeStale = mayBeStale
