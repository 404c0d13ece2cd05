package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
	"github.com/gitread/usercredits-operator/internal/account"
)

// strict makes the apiserver refuse a field its CRD does not know rather than drop it: an
// older CRD (without lots, say) must fail a row that carries them, not store it without.
const strict = client.FieldValidation("Strict")

// maxDecisions bounds how often one row is decided again because the user's object
// changed between the decision and its write (the live API writing the same user).
const maxDecisions = 5

// write makes one planned row's write: a create, an overwrite, or the mark of an unchanged
// user. Whatever the cluster
// shows when a write is refused for a changed state (an object created meanwhile, by the
// API or by a second run of this import; a balance spent meanwhile) is decided again on a
// fresh read, so the row ends up written once, found written already, or left alone.
func (im *Importer) write(ctx context.Context, o Outcome) Outcome {
	name := o.Object // a GitOps tool's name, or the API's
	if name == "" {
		name = account.ObjectNameForUser(string(o.Row.UserID))
	}
	create := o.Action == Create
	for range maxDecisions {
		if create {
			err := im.Client.Create(ctx, NewObject(o.Row, im.Namespace), client.FieldOwner(FieldManager), strict)
			if !apierrors.IsAlreadyExists(err) {
				return done(o, Create, err)
			}
		}
		current, err := im.get(ctx, name, o.Row.UserID)
		if err != nil {
			return done(o, o.Action, err)
		}
		if current == nil { // deleted since it was listed: the user gets an object of the API's name
			name, create = account.ObjectNameForUser(string(o.Row.UserID)), true
			continue
		}
		create = false
		ex := ExistingOf(current)
		o.Was = ex.Credits
		action := Decide(o.Row, &ex, im.Overwrite)
		var patch []byte
		switch action {
		case Overwrite:
			patch, err = OverwritePatch(current, o.Row, time.Now())
		case Unchanged:
			patch, err = MarkPatch(current, o.Row)
		default:
			return done(o, action, nil)
		}
		if err != nil {
			if errors.Is(err, account.ErrUntrusted) {
				err = fmt.Errorf("the user's object cannot be trusted as it is (the API refuses it too): %w", err)
			}
			return done(o, action, err)
		}
		if stale, err := im.patch(ctx, current, o.Row, patch); !stale {
			return done(o, action, err)
		}
	}
	return done(o, o.Action, fmt.Errorf("the user's object kept changing: decided %d times", maxDecisions))
}

// done is o with its final action and error.
func done(o Outcome, action Action, err error) Outcome {
	o.Action, o.Err = action, err
	return o
}

// get reads the object at name from the apiserver; nil when there is none. An object
// there that claims another user is an error: the name is the user's (a collision of 64
// bits of SHA-256, or a hand-made object), and nothing is written over it.
func (im *Importer) get(ctx context.Context, name string, user account.UserID) (*creditsv1alpha1.UserCredits, error) {
	obj := &creditsv1alpha1.UserCredits{}
	if err := im.Client.Get(ctx, client.ObjectKey{Namespace: im.Namespace, Name: name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	if obj.Spec.UserID != string(user) {
		return nil, fmt.Errorf("the object %s/%s, named for %q, claims user %q: nothing is written over it", im.Namespace, name, user, obj.Spec.UserID)
	}
	return obj, nil
}

// patch sends a patch decided on current for r. stale: the apiserver refused it because
// current changed after it was read (the patch's tests), so the row is to be decided again
// on a fresh read.
func (im *Importer) patch(ctx context.Context, current *creditsv1alpha1.UserCredits, r Row, patch []byte) (stale bool, err error) {
	tested := account.TestedState(current)
	err = im.Client.Patch(ctx, current.DeepCopy(), client.RawPatch(types.JSONPatchType, patch), client.FieldOwner(FieldManager), strict)
	switch {
	case err == nil:
		return false, nil
	case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
		return true, nil
	case apierrors.IsInvalid(err):
		// A failed test and a refusal of the write itself are both 422: it was a failed
		// test when what the tests compare has moved.
		fresh, gerr := im.get(ctx, current.Name, r.UserID)
		if gerr != nil || fresh == nil || account.TestedState(fresh) != tested {
			return true, nil
		}
	}
	return false, err
}
