package account

import (
	"encoding/json"
	"time"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// ImportedAnnotation is on each object `kubectl credits import` wrote (internal/migrate):
// which row it wrote, so that a second run, or a run resumed after a kill, never writes the
// same row twice, even over a balance the API has changed since; and the row's updated_at,
// which becomes status.updatedAt (the controller reads it through ImportedAt). It is
// written in the same request as the balance it describes.
const ImportedAnnotation = "credits.gitread.dev/imported"

// Imported is what ImportedAnnotation holds.
type Imported struct {
	// Row is a digest of the row written (user, balance, time, holds and lots).
	Row string `json:"row"`
	// Generation is the metadata.generation the import's write gave the object: while it
	// is the object's, its spec is still what the row said.
	Generation int64 `json:"generation"`
	// UpdatedAt is the row's updated_at, to the second; nil when it had none.
	UpdatedAt *time.Time `json:"updatedAt,omitempty"`
}

// maxImportedBytes bounds what ImportedOf reads: far above what an import writes (about
// 90 bytes), so that a value edited by hand costs nothing to skip.
const maxImportedBytes = 512

// Encode is the annotation's value.
func (i Imported) Encode() string {
	if i.UpdatedAt != nil {
		t := i.UpdatedAt.UTC().Truncate(time.Second)
		i.UpdatedAt = &t
	}
	data, _ := json.Marshal(i) // cannot fail: plain values
	return string(data)
}

// ImportedOf reads obj's ImportedAnnotation; false when there is none or it cannot be
// read (edited by hand: the object is then treated as never imported).
func ImportedOf(obj *creditsv1alpha1.UserCredits) (Imported, bool) {
	text, ok := obj.Annotations[ImportedAnnotation]
	if !ok || len(text) > maxImportedBytes {
		return Imported{}, false
	}
	var i Imported
	if err := json.Unmarshal([]byte(text), &i); err != nil || i.Row == "" || i.Generation < 1 {
		return Imported{}, false
	}
	return i, true
}

// ImportedAt is the updated_at of the imported row that obj's spec still is (its
// generation has not moved since the import wrote it): the time its balance last changed,
// at the source. False when obj was not imported, has changed since, or the row had no
// time.
func ImportedAt(obj *creditsv1alpha1.UserCredits) (time.Time, bool) {
	i, ok := ImportedOf(obj)
	if !ok || i.Generation != obj.Generation || i.UpdatedAt == nil {
		return time.Time{}, false
	}
	return i.UpdatedAt.UTC(), true
}

// importedWanted reports whether the informer cache keeps obj's ImportedAnnotation: only
// while the controller has not yet written the status of the generation the import wrote,
// which is when it reads the time. At a million imported users the cache would otherwise
// keep a million copies of it for nothing.
func importedWanted(obj *creditsv1alpha1.UserCredits) bool {
	return obj.Status.ObservedGeneration != obj.Generation
}
