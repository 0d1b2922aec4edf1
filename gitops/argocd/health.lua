-- Argo CD health check for siem.ocisiem.io/SiemPipeline (oci-siem-operator).
-- Install it as resource.customizations.health.siem.ocisiem.io_SiemPipeline in argocd-cm (README.md).
--
-- The operator writes three conditions (operator/siem_operator/conditions.py), all with observedGeneration;
-- this check reads two of them (DestinationSecure, True/TLS or False/InsecureDestination, is
-- advice and never changes health):
--   Ready:  True/Available; False/Creating, Deleting, Suspended (progress or a choice), False/Unavailable (a
--           resource failed in OCI), False/<error> when the spec, its Secret or the credentials are wrong;
--           Unknown/Reconciling or Unknown/<error> while the operator could not look.
--   Synced: True/ReconcileSuccess; False/ImmutableFieldChanged, False/ChildFailed, False/<error reason>
--           (siem_operator.errors.ErrorKind); Unknown/Reconciling.
--
-- Health:
--   Progressing  no status yet, or a status about an older generation (the operator has not caught up)
--   Degraded     a reason a person must act on (the spec, IAM, a quota, a Secret, a failed OCI resource),
--                with the condition's message; an unknown False reason is Degraded too (fail visible)
--   Suspended    spec.suspend is true (and nothing is Degraded)
--   Healthy      Ready=True about the current generation
--   Progressing  everything else: creating, deleting, or a transient error the operator retries by itself
hs = {}

-- Synced=False reasons that retrying cannot fix: the spec or something outside it must change.
local needs_person = {
  InvalidSpec = true,            -- terminal: fix the spec
  ImmutableFieldChanged = true,  -- terminal: the change cannot be applied in place
  ChildFailed = true,            -- terminal: an OCI resource is FAILED; delete it in OCI to re-create it
  NotAuthorized = true,          -- IAM policy or credentials (retried slowly)
  InvalidCredentials = true,     -- spec.credentials or its Secret
  LimitExceeded = true,          -- service limit or quota
  NameConflict = true,           -- a foreign resource holds the child's name
  SecretNotFound = true,         -- a Kubernetes Secret named by the spec is missing
}

-- Synced=False reasons the operator retries with backoff on its own.
local transient = {
  Throttled = true,
  ServiceUnavailable = true,
  Unreachable = true,
  Conflict = true,
  NotFound = true,
  RetryTokenReused = true,
  UnexpectedError = true,
  Reconciling = true,
}

-- Ready=False reasons that are progress or a choice, not a failure.
local ready_progress = {
  Creating = true,
  Deleting = true,
  Suspended = true,
}

local function condition(status, type_)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function text(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  return fallback
end

local generation = obj.metadata.generation or 1
local status = obj.status
local ready = condition(status, "Ready")
local synced = condition(status, "Synced")
local suspended = obj.spec ~= nil and obj.spec.suspend == true

if ready == nil and synced == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile the SiemPipeline"
  return hs
end

local observed = status.observedGeneration or 0
if observed ~= generation or (ready ~= nil and (ready.observedGeneration or 0) ~= generation)
    or (synced ~= nil and (synced.observedGeneration or 0) ~= generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile generation " .. tostring(generation)
    .. " (status is about generation " .. tostring(observed) .. ")"
  return hs
end

if synced ~= nil and synced.status == "False" and not transient[synced.reason] then
  hs.status = "Degraded"
  hs.message = text(synced, "Synced is False: " .. tostring(synced.reason))
  return hs
end

if ready ~= nil and ready.status == "False" and not ready_progress[ready.reason] then
  hs.status = "Degraded"
  hs.message = text(ready, "Ready is False: " .. tostring(ready.reason))
  return hs
end

if ready ~= nil and (ready.status == "Unknown" or ready.status == "False") and needs_person[ready.reason] then
  hs.status = "Degraded"
  hs.message = text(ready, "Ready: " .. tostring(ready.reason))
  return hs
end

if suspended then
  hs.status = "Suspended"
  hs.message = text(ready, "spec.suspend is true: no run starts until it is false")
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready, "Ready")
  return hs
end

hs.status = "Progressing"
if synced ~= nil and synced.status == "False" then
  hs.message = "Retrying: " .. text(synced, tostring(synced.reason))
else
  hs.message = text(ready, "Waiting for the SiemPipeline to become Ready")
end
return hs
