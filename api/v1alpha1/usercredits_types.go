package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConditionValid is the condition type that says whether spec.credits was accepted.
const ConditionValid = "Valid"

// ConditionLowBalance says whether the available balance is at or below the low-balance
// threshold (spec.lowBalanceThreshold, else the operator's --low-balance-threshold); it is
// absent when no threshold applies.
const ConditionLowBalance = "LowBalance"

// Reasons of the LowBalance condition.
const (
	// ReasonAtOrBelowThreshold: the available credits are at or below the threshold.
	ReasonAtOrBelowThreshold = "AtOrBelowThreshold"
	// ReasonAboveThreshold: the available credits are above the threshold.
	ReasonAboveThreshold = "AboveThreshold"
)

// ConditionIntact is False while stored parts of the account (the annotations the API
// writes) cannot be read; it is absent when they all read.
const ConditionIntact = "Intact"

// Reasons of the Intact condition (and its Events).
const (
	// ReasonDamagedParts: some stored parts cannot be read; the message names them.
	ReasonDamagedParts = "DamagedParts"
	// ReasonRepaired: every stored part reads again (an Event only).
	ReasonRepaired = "Repaired"
)

// UserIDField is the field selector that finds a user's objects at the apiserver
// (kubectl get uc --field-selector spec.userID=user_...).
const UserIDField = "spec.userID"

// MaxOpenReservations bounds the holds one user may have open at a time.
const MaxOpenReservations = 100

// Reasons of the Valid condition.
const (
	// ReasonBalanceValid: spec.credits is a non-negative balance and is mirrored in status.credits.
	ReasonBalanceValid = "BalanceValid"
	// ReasonNegativeBalance: spec.credits is below zero; status.credits keeps the last valid value.
	ReasonNegativeBalance = "NegativeBalance"
	// ReasonDuplicateUserID: another object in the namespace claims the same spec.userID.
	ReasonDuplicateUserID = "DuplicateUserID"
	// ReasonInvalidUserID: spec.userID is not a user ID the credits API accepts (control
	// characters, whitespace, invisible characters, invalid UTF-8): no request can name it.
	ReasonInvalidUserID = "InvalidUserID"
	// ReasonUntrustedRecord: the record breaks an invariant of the account (a balance or
	// holds over the largest balance, an invalid or repeated hold, a damaged key ledger), so
	// the credits API serves and changes nothing for the user until a person fixes it.
	ReasonUntrustedRecord = "UntrustedRecord"
)

// UserCreditsSpec is the desired state: whose balance this is and how many credits it holds.
type UserCreditsSpec struct {
	// UserID is the exact, case-sensitive Clerk user ID, e.g. user_2NNEqL2nrIRdJ194ndJqAHwEfxC.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="userID is immutable"
	UserID string `json:"userID"`

	// Credits is the available balance: how many credits the user can spend now. Credits
	// held by open reservations are not part of it. At most 2^53-1, the largest integer a
	// JavaScript client holds exactly: the API keeps the available and held credits
	// together at or below it.
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=9007199254740991
	Credits int64 `json:"credits"`

	// LowBalanceThreshold, when set, overrides the operator's --low-balance-threshold for
	// this user: at or below it, the LowBalance condition is True.
	// +optional
	// +kubebuilder:validation:Minimum=0
	LowBalanceThreshold *int64 `json:"lowBalanceThreshold,omitempty"`

	// Reservations are the user's open holds: credits taken out of the available balance
	// until they are captured (spent), released (returned) or expire (returned). Written by
	// the credits API; a GitOps tool should leave them alone.
	// +optional
	// +listType=map
	// +listMapKey=id
	// +kubebuilder:validation:MaxItems=100
	Reservations []Reservation `json:"reservations,omitempty"`
}

// Reservation is one open hold on a user's credits.
type Reservation struct {
	// ID names the hold in the API's capture and release calls: letters, digits, '_' and '-'.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	ID string `json:"id"`

	// Credits is how many credits are held.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=9007199254740991
	Credits int64 `json:"credits"`

	// ExpiresAt is when the hold returns to the balance unless captured or released.
	// +required
	ExpiresAt metav1.Time `json:"expiresAt"`
}

// UserCreditsStatus is written by the controller only.
type UserCreditsStatus struct {
	// Credits is the last balance the controller validated. It keeps its value while
	// spec.credits is invalid, so readers never see a rejected balance here.
	// +optional
	Credits int64 `json:"credits"`

	// Reserved is the sum of the open holds' credits, as the controller last saw them.
	// +optional
	Reserved int64 `json:"reserved"`

	// UpdatedAt is when the validated balance last changed.
	// +optional
	UpdatedAt *metav1.Time `json:"updatedAt,omitempty"`

	// ObservedGeneration is the metadata.generation this status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions holds the Valid and LowBalance conditions.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// UserCredits holds one user's prepaid credit balance.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=uc,categories=credits
// +kubebuilder:selectablefield:JSONPath=`.spec.userID`
// +kubebuilder:printcolumn:name="User",type=string,JSONPath=`.spec.userID`
// +kubebuilder:printcolumn:name="Credits",type=integer,JSONPath=`.spec.credits`
// +kubebuilder:printcolumn:name="Reserved",type=integer,JSONPath=`.status.reserved`
// +kubebuilder:printcolumn:name="Valid",type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name="Updated",type=date,JSONPath=`.status.updatedAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type UserCredits struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   UserCreditsSpec   `json:"spec"`
	Status UserCreditsStatus `json:"status,omitempty"`
}

// UserCreditsList is a list of UserCredits.
// +kubebuilder:object:root=true
type UserCreditsList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []UserCredits `json:"items"`
}

func init() {
	SchemeBuilder.Register(&UserCredits{}, &UserCreditsList{})
}
