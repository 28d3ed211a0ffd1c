-- Argo CD health check for roster.dev objects: Organization, Membership, Invite and Team share it.
-- roster's status follows kstatus: status.observedGeneration names the spec the conditions describe,
-- Ready sums the object up, Reconciling=True while roster works toward the spec or waits on
-- something that resolves by itself, Stalled=True when only a person can fix it.
-- Settled end states (an Invite accepted, expired or revoked; a deactivated Team) are Ready=True,
-- so they are Healthy, with Ready's reason first in the message. Never Suspended: Argo CD makes the
-- whole Application Suspended then, and a sync with waves waits for it forever (docs/argocd.md).
-- Written for argocd-cm's defaults: no Lua standard library (no string, math or os) is used.
local hs = { status = "Progressing", message = "Waiting for roster to observe this object" }
local function say(c)
  if c.message == nil or c.message == "" then
    return c.reason or c.type
  end
  return (c.reason or c.type) .. ": " .. c.message
end
if obj.status == nil or obj.status.observedGeneration == nil then
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration < obj.metadata.generation then
  hs.message = "Waiting for roster to observe generation " .. obj.metadata.generation
  return hs
end
local ready, reconciling, stalled
for _, c in ipairs(obj.status.conditions or {}) do
  if c.type == "Ready" then
    ready = c
  elseif c.type == "Reconciling" and c.status == "True" then
    reconciling = c
  elseif c.type == "Stalled" and c.status == "True" then
    stalled = c
  end
end
if stalled ~= nil then
  hs.status = "Degraded"
  hs.message = say(stalled)
elseif reconciling ~= nil then
  hs.message = say(reconciling)
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = say(ready)
elseif ready ~= nil then
  hs.message = say(ready)
end
return hs
