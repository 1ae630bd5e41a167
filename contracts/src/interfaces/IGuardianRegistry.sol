// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Guardian registry interface
/// @notice The registrar records who acts for a ward (a minor under 14, or an elder who delegated)
/// and until when. While a guardianship is active only the guardian signs for the ward.
interface IGuardianRegistry {
    /// @notice A guardian was recorded for a ward (replacing any earlier one).
    /// @param ward The ward's address.
    /// @param guardian The guardian's address.
    /// @param until Last second (unix time, inclusive) the guardianship is active.
    event GuardianSet(address indexed ward, address indexed guardian, uint64 until);

    /// @notice A guardianship was ended by the registrar before its end date.
    /// @param ward The ward's address.
    /// @param guardian The former guardian's address.
    event GuardianshipEnded(address indexed ward, address indexed guardian);

    /// @notice Neither the ward nor the guardian may be the zero address.
    error GuardianZeroAddress();

    /// @notice A ward cannot be its own guardian.
    /// @param ward The offending address.
    error GuardianIsWard(address ward);

    /// @notice The end date is already in the past.
    /// @param until The given end date (unix seconds).
    /// @param timestamp The current block timestamp.
    error GuardianUntilInPast(uint64 until, uint256 timestamp);

    /// @notice The ward has no guardianship on record.
    /// @param ward The offending address.
    error GuardianNotSet(address ward);

    /// @notice Records `guardian` as acting for `ward` until `until` (inclusive). Registrar only.
    /// @param ward The ward's address.
    /// @param guardian The guardian's address.
    /// @param until Last second (unix time) the guardianship is active; not in the past.
    function setGuardian(address ward, address guardian, uint64 until) external;

    /// @notice Ends the ward's guardianship at once. Registrar only.
    /// @param ward The ward's address.
    function endGuardianship(address ward) external;

    /// @notice The guardianship on record for `ward` (it may have passed its end date).
    /// @param ward The ward's address.
    /// @return guardian The guardian's address, zero if none.
    /// @return until Last active second (unix time), zero if none.
    function guardianOf(address ward) external view returns (address guardian, uint64 until);
}
