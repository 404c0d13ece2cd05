package credits

// PreconditionFailed lets the store's integration tests count writes refused as stale.
var MayBeStale = mayBeStale
