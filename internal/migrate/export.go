package migrate

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// Exporter reads every user's balance, holds and lots of one namespace from one
// consistent LIST (one resourceVersion): the file is the namespace at one moment, however
// long the LIST takes and whatever the API writes meanwhile.
type Exporter struct {
	Reader    client.Reader
	Namespace string
	// PageSize is the size of the LIST's pages (DefaultPageSize when 0).
	PageSize int64
	// afterPage, when set, is called between pages (tests write there).
	afterPage func(page int)
}

// Export is what an export read.
type Export struct {
	// Rows are the users, sorted by user ID (then by object name), so that the same
	// balances always give the same bytes.
	Rows []Row
	// ResourceVersion is the snapshot's.
	ResourceVersion string
	// Warnings name what an import of the file would refuse or report: users claimed by
	// several objects, IDs the API does not accept.
	Warnings []string
}

// Run reads the snapshot.
func (e *Exporter) Run(ctx context.Context) (Export, error) {
	var out Export
	type named struct {
		row  Row
		name string
	}
	var rows []named
	s := snapshot{reader: e.Reader, namespace: e.Namespace, pageSize: e.PageSize, afterPage: e.afterPage}
	rv, err := s.each(ctx, func() { rows = rows[:0] }, func(obj *creditsv1alpha1.UserCredits) error {
		rows = append(rows, named{RowOf(obj), obj.Name})
		return nil
	})
	if err != nil {
		return out, err
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].row.UserID != rows[j].row.UserID {
			return rows[i].row.UserID < rows[j].row.UserID
		}
		return rows[i].name < rows[j].name
	})
	out.Rows, out.ResourceVersion = make([]Row, len(rows)), rv
	for i, r := range rows {
		out.Rows[i] = r.row
		switch {
		case i > 0 && rows[i-1].row.UserID == r.row.UserID:
			out.Warnings = append(out.Warnings, fmt.Sprintf("user %s is claimed by the objects %s and %s: both are exported; the API serves neither, and an import takes the first",
				strconv.Quote(string(r.row.UserID)), rows[i-1].name, r.name))
		case !account.ValidUserID(string(r.row.UserID)):
			out.Warnings = append(out.Warnings, fmt.Sprintf("object %s: user ID %s is not one the API accepts (an import refuses it)", r.name, strconv.Quote(string(r.row.UserID))))
		}
	}
	return out, nil
}

// RowOf is obj's user as an export writes it: the available balance, the holds and lots
// as stored, and when the balance last changed: status.updatedAt once the controller has
// judged the spec as it is; before that, the time its import gave it if the spec is still
// the imported one (so that an export of a namespace just imported says what the source
// said, whether or not the controller has caught up).
func RowOf(obj *creditsv1alpha1.UserCredits) Row {
	r := Row{UserID: account.UserID(obj.Spec.UserID), Credits: obj.Spec.Credits, Holds: obj.Spec.Reservations, Lots: obj.Spec.Lots}
	current := obj.Status.UpdatedAt != nil && obj.Status.ObservedGeneration == obj.Generation
	if at, ok := account.ImportedAt(obj); ok && !current {
		r.UpdatedAt = at
	} else if obj.Status.UpdatedAt != nil {
		r.UpdatedAt = obj.Status.UpdatedAt.UTC().Truncate(time.Second)
	}
	return r
}

// Write writes rows in format.
func Write(w io.Writer, format Format, rows []Row) error {
	switch format {
	case CSV:
		return WriteCSV(w, rows)
	case JSON:
		return WriteJSON(w, rows)
	}
	return fmt.Errorf("unknown format %q", format)
}
