package credits

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	creditsv1alpha1 "github.com/gitread/usercredits-operator/api/v1alpha1"
)

// IndexByUserID registers the spec.userID field index on the manager's cache. Call it once
// per manager, before the controller or the API starts; both look users up through it.
func IndexByUserID(ctx context.Context, indexer client.FieldIndexer) error {
	return indexer.IndexField(ctx, &creditsv1alpha1.UserCredits{}, creditsv1alpha1.UserIDField, func(obj client.Object) []string {
		uc, ok := obj.(*creditsv1alpha1.UserCredits)
		if !ok || uc.Spec.UserID == "" {
			return nil
		}
		return []string{uc.Spec.UserID}
	})
}
