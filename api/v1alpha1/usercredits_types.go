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
// +kubebuilder:validation:XValidation:rule="!has(self.lots) || self.lots.map(l, l.remaining).sum() == self.credits",message="spec.credits must equal the sum of spec.lots[*].remaining: change a balance with POST /api/credits (or /grant, or a CreditGrant), edit a lot's remaining and spec.credits together, or remove spec.lots to make the whole balance one lot"
type UserCreditsSpec struct {
	// UserID is the exact, case-sensitive Clerk user ID, e.g. user_2NNEqL2nrIRdJ194ndJqAHwEfxC.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="userID is immutable"
	UserID string `json:"userID"`

	// Credits is the available balance: how many credits the user can spend now. Credits
	// held by open reservations are not part of it. With lots, it is the sum of their
	// remaining credits. At most 2^53-1, the largest integer a JavaScript client holds
	// exactly: the API keeps the available and held credits together at or below it.
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

	// spec.lots is an atomic list: written whole by the credits API, never merged field by
	// field, so the apiserver tracks one managed field for it instead of one per field of
	// every lot (make bench -lots-only: consumes on 20-lot users went from 37 % to about 50 %
	// of plain ones). Lot IDs are unique by the account's own check: a record that repeats
	// one is untrusted.

	// Lots are the user's grants with credits left, each spent in its turn: the lowest
	// priority value first, then the soonest expiry (never-expiring last), then the oldest
	// (in the same second, the one listed first); and the last closed ones (spent, voided,
	// expired), and Stripe purchases spent within the refund window, so that a refund or
	// dispute finds them. At most 100 grants with credits left or held, 100 spent purchases,
	// 20 closed, and the balance lot. Absent, the whole balance is one lot (source set) that
	// never expires. Written by the credits API; grant credits from Git with a CreditGrant,
	// not here.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=221
	Lots []Lot `json:"lots,omitempty"`
}

// Lot is one grant of credits, spent in its turn (UserCreditsSpec.Lots).
// +kubebuilder:validation:XValidation:rule="self.id == 'balance' || self.remaining <= self.credits",message="a lot's remaining cannot exceed its credits: grant more with POST /api/credits/grant (or a CreditGrant), which makes a new lot"
// +kubebuilder:validation:XValidation:rule="!has(self.closed) || self.remaining == 0",message="a closed (voided, expired or spent) lot keeps no remaining credits"
type Lot struct {
	// ID names the lot in GET /api/credits/grants and its void.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	ID string `json:"id"`

	// Credits is how many credits the lot was granted.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=9007199254740991
	Credits int64 `json:"credits"`

	// Remaining is how many of them are neither spent nor held.
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=9007199254740991
	Remaining int64 `json:"remaining"`

	// ExpiresAt, when set, is when what is left of the lot is removed.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// Priority orders spending: lower values are spent first (Stripe's convention).
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Priority int32 `json:"priority"`

	// Source says where the credits came from: api (POST /api/credits/grant), stripe (a
	// Checkout Session), gitops (a CreditGrant) or set (POST /api/credits, or an edit of
	// spec.credits).
	// +required
	// +kubebuilder:validation:Enum=api;stripe;gitops;set
	Source string `json:"source"`

	// Reference names what granted it: the Checkout Session, or the CreditGrant.
	// +optional
	// +kubebuilder:validation:MaxLength=255
	Reference string `json:"reference,omitempty"`

	// Reason says why, in people's words.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Reason string `json:"reason,omitempty"`

	// GrantedAt is when the lot was granted.
	// +required
	GrantedAt metav1.Time `json:"grantedAt"`

	// Closed, when set, says the lot was voided or has expired (the credits it still has
	// held are removed when their hold returns them), or was spent to nothing.
	// +optional
	// +kubebuilder:validation:Enum=voided;expired;spent
	Closed string `json:"closed,omitempty"`

	// ClosedAt is when the lot was voided, expired or was spent.
	// +optional
	ClosedAt *metav1.Time `json:"closedAt,omitempty"`

	// Payment names the Stripe PaymentIntent that paid for a purchase (source stripe): a
	// refund or dispute of that payment finds the lot by it.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	Payment string `json:"payment,omitempty"`

	// Refund is what Stripe's refunds of the payment took back from the lot.
	// +optional
	Refund *LotRefund `json:"refund,omitempty"`

	// Dispute is the payment's dispute (a chargeback or an inquiry), and what it took.
	// +optional
	Dispute *LotDispute `json:"dispute,omitempty"`

	// Removed, on a purchase (a lot with a payment), is how many of its credits were
	// removed unspent: by a void or its expiry, when holds returned them after, or kept
	// by a dispute won after either. A refund counts them as gone already (refund.removed),
	// not as spent.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=9007199254740991
	Removed int64 `json:"removed,omitempty"`
}

// LotRefund is what refunds of a purchase's payment took back. Stripe reports the
// cumulative amount refunded; the lot converges to it, whatever order the refunds arrive in.
// +kubebuilder:validation:XValidation:rule="self.taken + self.unrecoverable + (has(self.removed) ? self.removed : 0) <= self.credits",message="a refund's taken, removed and unrecoverable credits cannot exceed the credits it takes back"
type LotRefund struct {
	// AmountRefunded is the largest cumulative amount refunded that Stripe reported for the
	// payment's charge (charge.amount_refunded), in the smallest unit of its currency.
	// +required
	// +kubebuilder:validation:Minimum=1
	AmountRefunded int64 `json:"amountRefunded"`

	// Credits is how many of the lot's credits the refunds take back: the lot's credits
	// times the refunded share of the charge, rounded up.
	// +required
	// +kubebuilder:validation:Minimum=0
	Credits int64 `json:"credits"`

	// Taken is how many of them the refunds removed: from what was left of the lot, from
	// what a dispute of it held, or as holds returned them.
	// +required
	// +kubebuilder:validation:Minimum=0
	Taken int64 `json:"taken"`

	// Removed is how many of them a void or the lot's expiry had removed already (the
	// lot's removed): gone unspent, so neither taken nor unrecoverable.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Removed int64 `json:"removed,omitempty"`

	// Unrecoverable is how many of them had already been spent. The rest (credits minus
	// taken, removed and unrecoverable) are held by open reservations: removed when a hold
	// returns them, unrecoverable when it spends them.
	// +required
	// +kubebuilder:validation:Minimum=0
	Unrecoverable int64 `json:"unrecoverable"`
}

// LotDispute is a dispute of a purchase's payment.
type LotDispute struct {
	// ID names the Stripe dispute (du_... or dp_...).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	ID string `json:"id"`

	// Status is open until Stripe closes the dispute, then won or lost.
	// +required
	// +kubebuilder:validation:Enum=open;won;lost
	Status string `json:"status"`

	// Credits is how many credits the dispute took from the lot: what was left of it, and
	// what holds returned to it while the dispute was open or lost. A won dispute returns
	// them, once.
	// +required
	// +kubebuilder:validation:Minimum=0
	Credits int64 `json:"credits"`

	// Created is when Stripe created the dispute (unix seconds; 0: not known). A payment
	// may be disputed more than once (an inquiry, then a chargeback): the lot follows the
	// newest dispute, whatever order their events come in.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Created int64 `json:"created,omitempty"`
}

// LotCredits is what a hold took from one lot.
type LotCredits struct {
	// Lot is the lot's ID.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Lot string `json:"lot"`

	// Credits is how many credits the hold took from it.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=9007199254740991
	Credits int64 `json:"credits"`
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

	// From says which lots the hold took its credits from, so that a release returns them
	// there. Absent: the lot that is the whole balance.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	From []LotCredits `json:"from,omitempty"`
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

	// NextExpiry is when the next lot with credits left expires; ExpiringCredits how many
	// of its credits remain to expire then. Absent when no lot expires.
	// +optional
	NextExpiry *metav1.Time `json:"nextExpiry,omitempty"`
	// +optional
	ExpiringCredits int64 `json:"expiringCredits,omitempty"`

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
// +kubebuilder:printcolumn:name="Expiring",type=integer,JSONPath=`.status.expiringCredits`,priority=1
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.nextExpiry`,priority=1
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
