package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConditionApplied says whether a CreditGrant's credits were granted.
const ConditionApplied = "Applied"

// Reasons of the Applied condition.
const (
	// ReasonGranted: the credits are a lot of the user's (status.lotID).
	ReasonGranted = "Granted"
	// ReasonUserUntrusted: the user's record cannot be trusted (two objects claim the user,
	// or it breaks an invariant); applied once a person has fixed it.
	ReasonUserUntrusted = "UserUntrusted"
	// ReasonExpired: spec.expiresAt had passed before the grant could be applied.
	ReasonExpired = "Expired"
	// ReasonTooManyLots: the user already has the most lots with credits left; applied once
	// some are spent, expire or are voided.
	ReasonTooManyLots = "TooManyLots"
	// ReasonOverLimit: the credits would take the user past the largest balance.
	ReasonOverLimit = "OverLimit"
	// ReasonNameReused: a CreditGrant of this name was applied with other terms (within
	// the grant-key retention): a new grant needs a new name.
	ReasonNameReused = "NameReused"
	// ReasonInvalid: the spec cannot be granted (e.g. an invalid user ID).
	ReasonInvalid = "Invalid"
	// ReasonRetrying: the grant could not be written yet (the apiserver); it is retried.
	ReasonRetrying = "Retrying"
)

// CreditGrantSpec is a grant of credits authored in Git: applied exactly once, as a lot of
// the user's. It cannot be changed once created (a new grant is a new CreditGrant), and
// deleting it never takes the credits back (void the lot through the API for that).
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a CreditGrant cannot be changed: create a new one (a new name) for new terms; void a lot through POST /api/credits/grants/<id>/void"
type CreditGrantSpec struct {
	// UserID is the exact, case-sensitive Clerk user ID the credits are for.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	UserID string `json:"userID"`

	// Credits is how many credits to grant.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=9007199254740991
	Credits int64 `json:"credits"`

	// ExpiresAt, when set, is when what is left of the credits is removed.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// Priority orders spending among the user's lots: lower values first (default 50).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Priority *int32 `json:"priority,omitempty"`

	// Reason says why, in people's words.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Reason string `json:"reason,omitempty"`
}

// CreditGrantStatus is written by the controller only.
type CreditGrantStatus struct {
	// AppliedAt is when the credits were granted.
	// +optional
	AppliedAt *metav1.Time `json:"appliedAt,omitempty"`

	// LotID is the user's lot the credits became (GET /api/credits/grants).
	// +optional
	LotID string `json:"lotID,omitempty"`

	// ObservedGeneration is the metadata.generation this status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions holds the Applied condition.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// CreditGrant grants a user credits once, from Git: reviewed like any change, applied
// exactly once however often it is synced.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cg,categories=credits
// +kubebuilder:printcolumn:name="User",type=string,JSONPath=`.spec.userID`
// +kubebuilder:printcolumn:name="Credits",type=integer,JSONPath=`.spec.credits`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.spec.expiresAt`
// +kubebuilder:printcolumn:name="Applied",type=string,JSONPath=`.status.conditions[?(@.type=="Applied")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Reason",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Applied")].reason`
// +kubebuilder:printcolumn:name="Lot",type=string,priority=1,JSONPath=`.status.lotID`
type CreditGrant struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CreditGrantSpec   `json:"spec"`
	Status CreditGrantStatus `json:"status,omitempty"`
}

// CreditGrantList is a list of CreditGrants.
// +kubebuilder:object:root=true
type CreditGrantList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CreditGrant `json:"items"`
}

func init() {
	SchemeBuilder.Register(&CreditGrant{}, &CreditGrantList{})
}
